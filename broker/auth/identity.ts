/**
 * Who a connection authenticated as (DESIGN.md, Identity): what every way in
 * (password, token, enhanced authentication, anonymous access, a login from the
 * WebSocket upgrade) yields.
 */
import type { AclRules } from "../acl.ts";

export interface Identity {
  /**
   * The principal's name: the user name a password was checked for, a token's
   * identity claim, the name an enhanced method verified, or (anonymous access
   * with no credential store) the user name the client gave. Absent: anonymous.
   */
  username?: string;
  /** ACL rules from a token's claims. */
  rules?: AclRules;
  /** How the client proved who it is: with the name, it makes the principal (ownerOf). */
  via: "anonymous" | "password" | "jwt" | "auth-method" | UpgradeVia;
  /**
   * Epoch ms from which the credential no longer lets the client in (a token's
   * exp plus the leeway): the Gateway ends the connection then. Absent: no end.
   */
  expiresAt?: number;
}

/**
 * Ways in that only the WebSocket upgrade carries (upgrade-logins.ts): an HMAC-signed
 * session cookie, a Cloudflare Access assertion, a client certificate verified by
 * Cloudflare's mTLS. A token in the upgrade's query string is a JWT like any other ("jwt").
 */
export type UpgradeVia = "session" | "access" | "certificate";
