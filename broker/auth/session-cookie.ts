/**
 * A session cookie the app's own backend mints, so that a browser on the app's
 * domain logs in to the broker with the app's session (README, Browser logins and
 * client certificates). Browsers cannot set headers on a WebSocket, but they send
 * the domain's cookies with the upgrade.
 *
 *   body   = "v1." + base64url(UTF-8 name) + "." + exp
 *   cookie = body + "." + base64url(HMAC-SHA256(UPGRADE_SESSION_SECRET, body))
 *
 * base64url without padding; `exp` in whole seconds since the epoch, decimal. The
 * name becomes the principal `session:<name>`. Why this and not a JWT: it is
 * minted in three lines of any language's standard library, it has no algorithm
 * to choose (no `alg: none`, no key confusion), and its fixed shape is checked
 * before any cryptography. The version prefix keeps a cookie from ever reading as
 * a JWT or another format signed with the same secret.
 */
import { fromBase64Url, toBase64Url } from "../json.ts";
import { userNameProblem } from "./user-names.ts";

/** Bytes a secret has at least (as AUTH_PEPPER): fewer could be searched from one cookie. */
export const MIN_SESSION_SECRET_BYTES = 32;
/** The longest cookie value looked at: a name of 256 bytes makes one of about 400. */
export const MAX_SESSION_COOKIE_BYTES = 512;
/** Seconds of clock skew tolerated on `exp`, as for tokens. */
const LEEWAY_SECONDS = 30;

/**
 * The whole value, anchored. A 32-byte signature is 43 characters, the last of
 * which carries two padding bits that must be 0 (RFC 4648 3.5): one spelling per
 * cookie, so that no two values pass for the same.
 */
const SHAPE = /^v1\.([A-Za-z0-9_-]+)\.(\d{1,12})\.([A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])$/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export type SessionCookieResult =
  | { ok: true; name: string; expiresAt: number }
  | { ok: false; reason: string };

export class SessionCookies {
  private readonly key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  }

  /** A cookie value for `name`, good until `exp` (epoch seconds): what an app's backend makes. */
  async mint(name: string, exp: number): Promise<string> {
    const body = `v1.${toBase64Url(new TextEncoder().encode(name))}.${exp}`;
    const sig = new Uint8Array(
      await crypto.subtle.sign("HMAC", await this.key, new TextEncoder().encode(body)),
    );
    return `${body}.${toBase64Url(sig)}`;
  }

  /** The name a cookie value proves, and when it ends (epoch ms, `exp` plus the leeway). */
  async verify(value: string, now = Date.now()): Promise<SessionCookieResult> {
    if (value.length > MAX_SESSION_COOKIE_BYTES)
      return { ok: false, reason: `session cookie longer than ${MAX_SESSION_COOKIE_BYTES} bytes` };
    const shape = SHAPE.exec(value);
    if (shape === null) return { ok: false, reason: "session cookie is not v1.<name>.<exp>.<signature>" };
    const [, encodedName = "", exp = "", sig = ""] = shape;
    const body = value.slice(0, value.length - sig.length - 1);
    // crypto.subtle.verify compares in constant time.
    const signed = await crypto.subtle.verify(
      "HMAC",
      await this.key,
      fromBase64Url(sig),
      new TextEncoder().encode(body),
    );
    if (!signed) return { ok: false, reason: "session cookie signature" };
    const expiresAt = (Number(exp) + LEEWAY_SECONDS) * 1000;
    if (now >= expiresAt) return { ok: false, reason: "session cookie expired" };
    let name: string;
    try {
      name = strictUtf8.decode(fromBase64Url(encodedName));
    } catch {
      return { ok: false, reason: "session cookie name is not UTF-8" };
    }
    const problem = userNameProblem(name);
    if (problem !== null) return { ok: false, reason: `session cookie: ${problem}` };
    return { ok: true, name, expiresAt };
  }
}

/**
 * The values of the cookies named `name` in a Cookie header (RFC 6265 5.4: "a=b;
 * c=d"), in order. Several are possible (a cookie set for the parent domain
 * besides the app's own): the caller decides what that means.
 */
export function cookieValues(header: string | null, name: string): string[] {
  if (header === null) return [];
  const values: string[] = [];
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    // RFC 6265 4.1.1: a value may be quoted.
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    values.push(value);
  }
  return values;
}
