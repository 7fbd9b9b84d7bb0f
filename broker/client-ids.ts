/**
 * Which client ids a principal may use (DESIGN.md, Identity). Every client id
 * is bounded in length (it is kept in the WebSocket attachment, at most 2,048
 * bytes on Cloudflare), free of control characters (they end up in logs,
 * dashboards and file names; MQTT 1.5.4 says they SHOULD NOT be sent), and, when
 * CLIENT_ID_PATTERN is set, of the form it gives: `*` stands for any run of
 * characters and `%u` for the principal's name, so `%u-*` lets alice use only
 * client ids that start with "alice-" (as Mosquitto's and AWS IoT's policies
 * tie client ids to users). Ownership of a client id by the principal that
 * created its session is the Session's to enforce (Session.claim).
 */
import { utf8Length } from "../mqtt/wire/utf8.ts";
import type { Identity } from "./auth/identity.ts";

/** The largest MAX_CLIENT_ID_LENGTH: room for the rest of the attachment (test/unit/attachment.test.ts). */
export const CLIENT_ID_LENGTH_LIMIT = 512;

/** Whether `s` has U+0000–U+001F or U+007F–U+009F (MQTT 5.0 1.5.4 and 3.1.1 1.5.3). */
export function hasControlCharacters(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

export type ClientIdProblem = { code: "invalid" | "not-allowed"; reason: string };

/**
 * Client ids a client may not take: a bridge publishes here as `bridge:<name>`
 * (its messages' origin, by which it does not send them back out), so a client
 * with that id would have its messages kept from the bridge, and could pass for it.
 */
export const RESERVED_CLIENT_ID_PREFIX = "bridge:";

/** What is wrong with a client id whatever the principal: length, characters, or reserved. */
export function clientIdShapeProblem(clientId: string, maxLength: number): ClientIdProblem | null {
  const bytes = utf8Length(clientId);
  if (bytes > maxLength)
    return { code: "invalid", reason: `client id of ${bytes} bytes; at most ${maxLength}` };
  if (hasControlCharacters(clientId)) return { code: "invalid", reason: "client id has control characters" };
  if (clientId.startsWith(RESERVED_CLIENT_ID_PREFIX))
    return {
      code: "not-allowed",
      reason: `client ids starting "${RESERVED_CLIENT_ID_PREFIX}" are the bridges'`,
    };
  return null;
}

/** Whether `clientId` fits CLIENT_ID_PATTERN for this principal. */
export function clientIdAllowed(pattern: string | undefined, clientId: string, identity: Identity): boolean {
  if (pattern === undefined) return true;
  const name = identity.username;
  // Anonymous clients have no name to put in the pattern.
  if (pattern.includes("%u") && (name === undefined || name === "")) return false;
  const parts = pattern.split("*").map((part) => part.replaceAll("%u", name ?? ""));
  const first = parts[0] as string;
  const last = parts.at(-1) as string;
  if (parts.length === 1) return clientId === first;
  if (!clientId.startsWith(first) || clientId.length < first.length + last.length) return false;
  if (!clientId.endsWith(last)) return false;
  let at = first.length;
  const end = clientId.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const found = clientId.indexOf(middle, at);
    if (found < 0 || found + middle.length > end) return false;
    at = found + middle.length;
  }
  return true;
}
