/**
 * Authentication at CONNECT, one interface for every way in: anonymous (when
 * allowed), user name and password, or a JWT in the password field. Enhanced
 * authentication (AUTH) methods produce the same Identity, and so do the logins
 * the Worker reads from the WebSocket upgrade (upgrade-logins.ts): a session
 * cookie, Cloudflare Access, a client certificate or a token in the query.
 *
 * Every way in yields one principal (DESIGN.md, Identity): the name that
 * everything that authorizes is keyed by, sessions included. A token's principal
 * is its verified identity claim, never the CONNECT user name; an enhanced
 * method's is the name it verified.
 */
import { type AclRules, aclPatternProblem } from "../acl.ts";
import type { Identity } from "./identity.ts";
import { type JwtClaims, JwtVerifier, looksLikeJwt } from "./jwt.ts";
import { PasswordLogins } from "./password-logins.ts";
import { PasswordFile } from "./passwords.ts";
import type { FailureCost } from "./throttle.ts";
import { boundLogin, identityAtConnect, type UpgradeIdentity } from "./upgrade-identity.ts";

export type { Identity };

/** The owner key's prefix per way in: a password user "alice" and a token subject "alice" are two principals. */
const OWNER_PREFIX: Record<Identity["via"], string> = {
  password: "user:",
  jwt: "jwt:",
  "auth-method": "auth:",
  // A name given under anonymous access with no credential store, unverified.
  anonymous: "anon:",
  session: "session:",
  access: "access:",
  certificate: "cert:",
};

/**
 * The ways in that an earlier release recorded as `user:<name>` (legacyOwnerOf).
 * The upgrade's ways in came after namespaces: no stored session is theirs under
 * another key, so a certificate whose CN is "alice" never claims alice's old one.
 */
const BEFORE_NAMESPACES: ReadonlyArray<Identity["via"]> = ["password", "jwt", "auth-method", "anonymous"];

/**
 * The owner a session records (Session.claim): one key per principal, so that a
 * client id taken by one principal cannot be claimed by another. Each way in
 * names its principals in a namespace of its own (a token's subject is not the
 * password user of that name), and a user named "anonymous" is not the anonymous
 * principal. Password users keep the key every named principal had before.
 */
export function ownerOf(identity: Identity): string {
  return identity.username === undefined ? "anonymous" : `${OWNER_PREFIX[identity.via]}${identity.username}`;
}

/**
 * The owner an earlier release recorded for the same login: every named
 * principal was `user:<name>`. A session or registry row recorded before
 * namespaces (and only such a one) may be claimed with it, once: the claim
 * records the namespaced owner (README, Principals and client ids).
 */
export function legacyOwnerOf(owner: string): string {
  for (const via of BEFORE_NAMESPACES) {
    const prefix = OWNER_PREFIX[via];
    if (owner.startsWith(prefix)) return `user:${owner.slice(prefix.length)}`;
  }
  return owner;
}

export type AuthResult =
  | { ok: true; identity: Identity }
  /**
   * bad-credentials: CONNACK 4 / 0x86; not-authorized: CONNACK 5 / 0x87. `cost`:
   * whether a password was checked (PBKDF2), for the failed-login budgets.
   */
  | { ok: false; code: "bad-credentials" | "not-authorized"; reason: string; cost: FailureCost };

export interface ConnectCredentials {
  clientId: string;
  username?: string;
  password?: Uint8Array;
  /**
   * The login the Worker verified at the WebSocket upgrade, if any: used when
   * CONNECT carries no password (identityAtConnect).
   */
  upgrade?: UpgradeIdentity;
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

/** Refused without a password check: it costs the gateway next to nothing. */
const badCredentials: AuthResult = {
  ok: false,
  code: "bad-credentials",
  reason: "user name or password not accepted",
  cost: "cheap",
};

/** Refused after a full password check (a real one, or the decoy of an unknown name). */
const badPassword: AuthResult = { ...badCredentials, cost: "password" };

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
    // A login from the upgrade stands for credentials CONNECT does not carry.
    const upgraded = identityAtConnect(c.upgrade, c);
    if (upgraded !== undefined) return upgraded;
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
      // A refusal after a full check (a decoy's too) draws on the gateway's budget.
      if (verdict === "refused" || (verdict === "unknown" && decoy)) return badPassword;
    } else if (listed && (c.username !== undefined || password !== undefined)) {
      return badCredentials;
    } else if (c.username !== undefined && this.allowAnonymous && (await this.passwords.known(c.username))) {
      // Anonymous access does not give a stored user's name to whoever types it.
      return badCredentials;
    }
    if (!this.allowAnonymous) {
      return password === undefined
        ? { ok: false, code: "not-authorized", reason: "anonymous access is off", cost: "cheap" }
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
    if (!result.ok) return { ok: false, code: "bad-credentials", reason: result.reason, cost: "cheap" };
    const login = tokenLogin(result.claims, this.identityClaim, result.expiresAt);
    if (!login.ok) return { ...login, cost: "cheap" };
    return boundLogin(login, c, "the token's");
  }
}

/** What a verified token says: who (its identity claim), the client id it binds, its ACL rules. */
export type TokenLogin =
  | ({ ok: true } & UpgradeIdentity)
  | { ok: false; code: "bad-credentials" | "not-authorized"; reason: string };

/**
 * The login a verified token makes, wherever it came (the password field, the
 * upgrade's query string): its identity claim names the principal, a `client_id`
 * claim binds it to that client id, an `mqtt` claim gives its ACL rules.
 */
export function tokenLogin(claims: JwtClaims, identityClaim: string, expiresAt: number): TokenLogin {
  const bound = claims.client_id;
  if (bound !== undefined && typeof bound !== "string")
    return { ok: false, code: "not-authorized", reason: "token's client_id claim is not a string" };
  const name = claims[identityClaim];
  if (typeof name !== "string" || name === "")
    return { ok: false, code: "bad-credentials", reason: `token has no ${identityClaim} claim` };
  const identity: UpgradeIdentity["identity"] = { username: name, via: "jwt", expiresAt };
  const acl = claims.mqtt;
  if (acl !== undefined) {
    const rules = aclClaim(acl);
    if (rules === undefined) return { ok: false, code: "bad-credentials", reason: "token's mqtt claim" };
    identity.rules = rules;
  }
  return bound === undefined ? { ok: true, identity } : { ok: true, identity, clientId: bound };
}

/** A token's `mqtt` claim: {"publish": [...], "subscribe": [...]} of ACL patterns, checked as the ACL setting's. */
function aclClaim(value: unknown): AclRules | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const { publish = [], subscribe = [] } = value as Record<string, unknown>;
  const patterns = (x: unknown): x is string[] =>
    Array.isArray(x) && x.every((s) => aclPatternProblem(s) === null);
  return patterns(publish) && patterns(subscribe) ? { publish, subscribe } : undefined;
}
