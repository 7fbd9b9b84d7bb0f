/**
 * A login verified at the WebSocket upgrade, on its way from the Worker to the
 * Gateway, and what it counts for at CONNECT (README, Browser logins and client
 * certificates).
 *
 * The Worker verifies the credential the upgrade request carries (a session
 * cookie, a Cloudflare Access assertion, a client certificate, a token in the
 * query string: upgrade-logins.ts) and writes the login it makes in one request
 * header, UPGRADE_IDENTITY_HEADER. It removes every `x-nimbus-*` header a client
 * sent first, so that only the Worker can say who a socket belongs to. The Gateway
 * reads the header when it accepts the socket (upgradeIdentityOf), keeps the login
 * in the socket's attachment until CONNECT, and there passes it to the
 * authenticator (ConnectCredentials.upgrade), which decides with identityAtConnect.
 */

import { utf8Length } from "../../mqtt/wire/utf8.ts";
import { type AclRules, aclPatternProblem } from "../acl.ts";
import { CLIENT_ID_LENGTH_LIMIT } from "../client-ids.ts";
import type { AuthResult, ConnectCredentials } from "./authenticator.ts";
import type { Identity } from "./identity.ts";
import { userNameProblem } from "./user-names.ts";

/** The request header the Worker sets on an upgrade it verified a login for. */
export const UPGRADE_IDENTITY_HEADER = "x-nimbus-upgrade-identity";

/**
 * The longest login the header carries, in characters of its JSON (non-ASCII
 * escaped, so characters are bytes). The Gateway keeps it in the socket's
 * attachment until CONNECT, and an attachment holds 2,048 bytes: even if every
 * string of it were stored two bytes a character, 768 leave room for the rest
 * (test/unit/upgrade-logins.test.ts measures the worst case).
 */
export const MAX_UPGRADE_IDENTITY_BYTES = 768;

/** The ways in a login from the upgrade can have: the upgrade's own, and a token in its query. */
export type UpgradeLoginVia = "session" | "access" | "certificate" | "jwt";

/** A login verified at the upgrade: always a named principal. */
export interface UpgradeIdentity {
  identity: Identity & { username: string; via: UpgradeLoginVia };
  /** The one client id the credential is good for (a token's `client_id` claim). */
  clientId?: string;
}

const VIAS: ReadonlySet<string> = new Set<UpgradeLoginVia>(["session", "access", "certificate", "jwt"]);

/**
 * The login as the header carries it: JSON with every character past ASCII
 * escaped (a header value is bytes); undefined when it is longer than
 * MAX_UPGRADE_IDENTITY_BYTES (a token's large `mqtt` claim, say: such a token
 * goes in CONNECT's password field instead).
 */
export function encodeUpgradeIdentity(login: UpgradeIdentity): string | undefined {
  const text = JSON.stringify(login).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return text.length <= MAX_UPGRADE_IDENTITY_BYTES ? text : undefined;
}

/**
 * The login of an upgrade request (its UPGRADE_IDENTITY_HEADER), checked as
 * strictly as it was written: undefined when there is none, or when the header
 * is not one the Worker writes (then the socket has no login: it can only be
 * less than what it would have had).
 */
export function upgradeIdentityOf(headers: Headers): UpgradeIdentity | undefined {
  const text = headers.get(UPGRADE_IDENTITY_HEADER);
  if (text === null || text.length > MAX_UPGRADE_IDENTITY_BYTES) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  return upgradeIdentityProblem(raw) === null ? (raw as UpgradeIdentity) : undefined;
}

/** What keeps `raw` from being an UpgradeIdentity; null: nothing. */
export function upgradeIdentityProblem(raw: unknown): string | null {
  if (!isObject(raw)) return "not an object";
  for (const key of Object.keys(raw))
    if (key !== "identity" && key !== "clientId") return `unknown key ${key}`;
  const { identity, clientId } = raw;
  if (clientId !== undefined) {
    if (typeof clientId !== "string" || utf8Length(clientId) > CLIENT_ID_LENGTH_LIMIT) return "clientId";
  }
  if (!isObject(identity)) return "identity";
  for (const key of Object.keys(identity))
    if (!["username", "via", "expiresAt", "rules"].includes(key)) return `unknown identity key ${key}`;
  const { username, via, expiresAt, rules } = identity;
  if (typeof via !== "string" || !VIAS.has(via)) return "via";
  if (typeof username !== "string" || userNameProblem(username) !== null) return "username";
  if (expiresAt !== undefined && (typeof expiresAt !== "number" || !Number.isFinite(expiresAt)))
    return "expiresAt";
  if (rules !== undefined && !isRules(rules)) return "rules";
  return null;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isRules(x: unknown): x is AclRules {
  if (!isObject(x)) return false;
  const list = (v: unknown) => Array.isArray(v) && v.every((p) => aclPatternProblem(p) === null);
  return (
    Object.keys(x).every((k) => k === "publish" || k === "subscribe") && list(x.publish) && list(x.subscribe)
  );
}

/**
 * Whether the upgrade's login decides CONNECT, and how; undefined when it does not
 * (there is none, or CONNECT carries a password: then CONNECT's credentials are
 * checked as if there were no upgrade login, and decide).
 *
 * The rules, as for a token in the password field:
 * - CONNECT without a password (and without an Authentication Method, which the
 *   Gateway handles before this) is the upgrade's login.
 * - A CONNECT user name may repeat the login's name, never rename it (3.1.1 code
 *   4, 5.0 0x86): a client must not believe it is someone it is not.
 * - A login bound to a client id is good for that client id only (code 5, 0x87).
 * - A login whose credential ended while the socket waited for CONNECT (up to
 *   CONNECT_TIMEOUT) is refused (code 4, 0x86).
 * - A password in CONNECT wins: it is checked in full, and the upgrade's login
 *   counts for nothing then. Each proves a principal on its own, so letting either
 *   decide gives no one more than one of them would; the password is what the
 *   client chose to send.
 */
export function identityAtConnect(
  upgrade: UpgradeIdentity | undefined,
  c: ConnectCredentials,
  now = Date.now(),
): AuthResult | undefined {
  if (upgrade === undefined || c.password !== undefined) return undefined;
  const end = upgrade.identity.expiresAt;
  if (end !== undefined && now >= end)
    return { ok: false, code: "bad-credentials", reason: "the upgrade's login has expired", cost: "cheap" };
  return boundLogin(upgrade, c, "the upgrade's");
}

/**
 * A verified login against what CONNECT says: a login bound to a client id is
 * good for that one only, and the login says who the client is: a user name may
 * repeat it, never rename it (a client must not believe it is someone it is not).
 * `whose` names the login in refusals.
 */
export function boundLogin(login: UpgradeIdentity, c: ConnectCredentials, whose: string): AuthResult {
  if (login.clientId !== undefined && login.clientId !== c.clientId)
    return {
      ok: false,
      code: "not-authorized",
      reason: `${whose} login is for another client id`,
      cost: "cheap",
    };
  if (c.username !== undefined && c.username !== login.identity.username)
    return {
      ok: false,
      code: "bad-credentials",
      reason: `user name differs from ${whose} identity`,
      cost: "cheap",
    };
  return { ok: true, identity: login.identity };
}
