/**
 * Authentication at CONNECT, one interface for every way in: anonymous (when
 * allowed), user name and password, or a JWT in the password field. Enhanced
 * authentication (AUTH) methods produce the same Identity.
 *
 * Every way in yields one principal (DESIGN.md, Identity): the name that
 * everything that authorizes is keyed by, sessions included. A token's principal
 * is its verified identity claim, never the CONNECT user name; an enhanced
 * method's is the name it verified.
 */
import type { AclRules } from "../acl.ts";
import { JwtVerifier, looksLikeJwt } from "./jwt.ts";
import { PasswordLogins } from "./password-logins.ts";
import { PasswordFile } from "./passwords.ts";

export interface Identity {
  /**
   * The principal's name: the user name a password was checked for, a token's
   * identity claim, the name an enhanced method verified, or (anonymous access
   * with no credential store) the user name the client gave. Absent: anonymous.
   */
  username?: string;
  /** ACL rules from a token's claims. */
  rules?: AclRules;
  /** How the client proved who it is, for logs. */
  via: "anonymous" | "password" | "jwt" | "auth-method";
}

/**
 * The owner a session records (Session.claim): one key per principal, so that a
 * client id taken by one principal cannot be claimed by another. A user named
 * "anonymous" is not the anonymous principal.
 */
export function ownerOf(identity: Identity): string {
  return identity.username === undefined ? "anonymous" : `user:${identity.username}`;
}

export type AuthResult =
  | { ok: true; identity: Identity }
  /** bad-credentials: CONNACK 4 / 0x86; not-authorized: CONNACK 5 / 0x87. */
  | { ok: false; code: "bad-credentials" | "not-authorized"; reason: string };

export interface ConnectCredentials {
  clientId: string;
  username?: string;
  password?: Uint8Array;
}

export interface Authenticator {
  authenticate(c: ConnectCredentials): Promise<AuthResult>;
}

export interface AuthSettings {
  allowAnonymous: boolean;
  /** MQTT_PASSWORDS alone; `logins` adds the user store and the verifier cache to it. */
  passwords?: string;
  logins?: PasswordLogins;
  jwt: ConstructorParameters<typeof JwtVerifier>[0];
  /** The claim that names a token's principal (default "sub"). */
  identityClaim?: string;
}

const badCredentials: AuthResult = {
  ok: false,
  code: "bad-credentials",
  reason: "user name or password not accepted",
};

export class ConnectAuthenticator implements Authenticator {
  private readonly allowAnonymous: boolean;
  private readonly passwords: PasswordLogins;
  private readonly jwt: JwtVerifier;
  private readonly identityClaim: string;

  constructor(settings: AuthSettings) {
    this.allowAnonymous = settings.allowAnonymous;
    this.passwords = settings.logins ?? new PasswordLogins(new PasswordFile(settings.passwords ?? ""));
    this.jwt = new JwtVerifier(settings.jwt);
    this.identityClaim = settings.identityClaim ?? "sub";
  }

  async authenticate(c: ConnectCredentials): Promise<AuthResult> {
    const password = c.password === undefined ? undefined : new TextDecoder().decode(c.password);
    if (password !== undefined && this.jwt.enabled && looksLikeJwt(password))
      return this.fromToken(c, password);
    // A credential list deployed with the broker: whatever is given is checked, so
    // that no one names themselves after a user it knows.
    const listed = this.passwords.fileUsers > 0 || this.jwt.enabled;
    if (c.username !== undefined && c.password !== undefined) {
      // An unknown name costs a full check whenever it is refused like a wrong password.
      const decoy = listed || !this.allowAnonymous;
      const verdict = await this.passwords.check(c.username, c.password, decoy);
      if (verdict === "accepted") return { ok: true, identity: { username: c.username, via: "password" } };
      if (verdict === "refused" || listed) return badCredentials;
    } else if (listed && (c.username !== undefined || password !== undefined)) {
      return badCredentials;
    } else if (c.username !== undefined && this.allowAnonymous && (await this.passwords.known(c.username))) {
      // Anonymous access does not give a stored user's name to whoever types it.
      return badCredentials;
    }
    if (!this.allowAnonymous) {
      return password === undefined
        ? { ok: false, code: "not-authorized", reason: "anonymous access is off" }
        : badCredentials;
    }
    // Anonymous access and no user of that name: let in, as Mosquitto does; a user
    // name given still names the client in ACLs, unverified.
    const identity: Identity = { via: "anonymous" };
    if (c.username !== undefined) identity.username = c.username;
    return { ok: true, identity };
  }

  private async fromToken(c: ConnectCredentials, token: string): Promise<AuthResult> {
    const result = await this.jwt.verify(token);
    if (!result.ok) return { ok: false, code: "bad-credentials", reason: result.reason };
    const claims = result.claims;
    // A token may bind the client id it is good for.
    const bound = claims.client_id;
    if (bound !== undefined && bound !== c.clientId) {
      return { ok: false, code: "not-authorized", reason: "token is for another client id" };
    }
    const name = claims[this.identityClaim];
    if (typeof name !== "string" || name === "") {
      return { ok: false, code: "bad-credentials", reason: `token has no ${this.identityClaim} claim` };
    }
    // The token says who the client is: a user name may repeat it, never rename it.
    if (c.username !== undefined && c.username !== name) {
      return { ok: false, code: "bad-credentials", reason: "user name differs from the token's identity" };
    }
    const identity: Identity = { username: name, via: "jwt" };
    const acl = claims.mqtt;
    if (acl !== undefined) {
      const rules = aclClaim(acl);
      if (rules === undefined) return { ok: false, code: "bad-credentials", reason: "token's mqtt claim" };
      identity.rules = rules;
    }
    return { ok: true, identity };
  }
}

/** A token's `mqtt` claim: {"publish": [...], "subscribe": [...]} of strings. */
function aclClaim(value: unknown): AclRules | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const { publish = [], subscribe = [] } = value as Record<string, unknown>;
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string");
  return strings(publish) && strings(subscribe) ? { publish, subscribe } : undefined;
}
