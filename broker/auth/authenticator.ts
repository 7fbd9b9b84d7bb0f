/**
 * Authentication at CONNECT, one interface for every way in: anonymous (when
 * allowed), user name and password, or a JWT in the password field. Enhanced
 * authentication (AUTH) methods produce the same Identity.
 */
import type { AclRules } from "../acl.ts";
import { JwtVerifier, looksLikeJwt } from "./jwt.ts";
import { PasswordFile } from "./passwords.ts";

export interface Identity {
  username?: string;
  /** ACL rules from a token's claims. */
  rules?: AclRules;
  /** How the client proved who it is, for logs. */
  via: "anonymous" | "password" | "jwt" | "auth-method";
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
  passwords?: string;
  jwt: ConstructorParameters<typeof JwtVerifier>[0];
}

export class ConnectAuthenticator implements Authenticator {
  private readonly allowAnonymous: boolean;
  private readonly passwords: PasswordFile;
  private readonly jwt: JwtVerifier;

  constructor(settings: AuthSettings) {
    this.allowAnonymous = settings.allowAnonymous;
    this.passwords = new PasswordFile(settings.passwords ?? "");
    this.jwt = new JwtVerifier(settings.jwt);
  }

  async authenticate(c: ConnectCredentials): Promise<AuthResult> {
    if (c.password === undefined) {
      if (c.username === undefined && this.allowAnonymous)
        return { ok: true, identity: { via: "anonymous" } };
      return { ok: false, code: "not-authorized", reason: "anonymous access is off" };
    }
    const password = new TextDecoder().decode(c.password);
    if (this.jwt.enabled && looksLikeJwt(password)) return this.fromToken(c, password);
    if (c.username !== undefined && this.passwords.size > 0) {
      if (await this.passwords.verify(c.username, c.password)) {
        return { ok: true, identity: { username: c.username, via: "password" } };
      }
    }
    return { ok: false, code: "bad-credentials", reason: "user name or password not accepted" };
  }

  private async fromToken(c: ConnectCredentials, token: string): Promise<AuthResult> {
    const result = await this.jwt.verify(token);
    if (!result.ok) return { ok: false, code: "bad-credentials", reason: result.reason };
    const claims = result.claims;
    // A token may bind the client id it is good for.
    const bound = claims.client_id;
    if (typeof bound === "string" && bound !== c.clientId) {
      return { ok: false, code: "not-authorized", reason: "token is for another client id" };
    }
    const identity: Identity = { via: "jwt" };
    const username = c.username ?? (typeof claims.sub === "string" ? claims.sub : undefined);
    if (username !== undefined) identity.username = username;
    const acl = claims.mqtt as Partial<AclRules> | undefined;
    if (acl !== undefined && typeof acl === "object") {
      identity.rules = { publish: acl.publish ?? [], subscribe: acl.subscribe ?? [] };
    }
    return { ok: true, identity };
  }
}
