/**
 * Cloudflare Access: on a route an Access application protects, every request
 * that passed Access carries the application token, a JWT, in the
 * `Cf-Access-Jwt-Assertion` header (browsers also send it as the
 * `CF_Authorization` cookie). Cloudflare's docs ask the origin to verify it: a
 * request that reaches the Worker some other way (its workers.dev address, a
 * route Access does not cover) can carry any header it likes.
 *
 * Verified as JWTs from a JWKS are (jwt.ts, jwks.ts): the team's keys from
 * `https://<team>.cloudflareaccess.com/cdn-cgi/access/certs` (cached, fetched again
 * at once for an unknown `kid`, as Access rotates its keys every six weeks), RS256,
 * `exp` required, `iss` the team domain and `aud` the application's AUD tag, both
 * required. The principal (`access:<name>`) is the user's `email`, or for a
 * service token, which has none, its `common_name` (the token's Client ID).
 */
import { JwtVerifier, looksLikeJwt } from "./jwt.ts";
import { userNameProblem } from "./user-names.ts";

/** The header Access sets, and the cookie browsers carry the same token in. */
export const ACCESS_HEADER = "Cf-Access-Jwt-Assertion";
export const ACCESS_COOKIE = "CF_Authorization";
/** The longest assertion looked at: Access's are about 1 KiB, with custom claims a few. */
export const MAX_ACCESS_TOKEN_BYTES = 8 * 1024;

export type AccessResult = { ok: true; name: string; expiresAt: number } | { ok: false; reason: string };

/**
 * The team's domain from what an operator may write: `myteam`,
 * `myteam.cloudflareaccess.com` or `https://myteam.cloudflareaccess.com/`;
 * undefined if it names no team.
 */
export function accessTeamDomain(setting: string): string | undefined {
  const bare = setting
    .trim()
    .toLowerCase()
    .replace(/^https:\/\//, "")
    .replace(/\/$/, "")
    .replace(/\.cloudflareaccess\.com$/, "");
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(bare) ? `${bare}.cloudflareaccess.com` : undefined;
}

export class AccessVerifier {
  private readonly jwt: JwtVerifier;

  /**
   * `teamDomain` as accessTeamDomain gives it; `aud` the Access application's AUD
   * tag; `jwks` the team's keys as a JWKS document instead of fetching them
   * (ACCESS_JWKS: offline development and tests; Access rotates its keys every six
   * weeks, so a deployment fetches them).
   */
  constructor(teamDomain: string, aud: string, jwks?: string) {
    const keys = jwks === undefined ? { jwksUrl: `https://${teamDomain}/cdn-cgi/access/certs` } : { jwks };
    this.jwt = new JwtVerifier({ ...keys, issuer: `https://${teamDomain}`, audience: aud });
  }

  /** The verifier's JWKS (for tests of its fetches). */
  get jwks() {
    return this.jwt.jwks;
  }

  async verify(token: string, now = Date.now()): Promise<AccessResult> {
    if (token.length > MAX_ACCESS_TOKEN_BYTES)
      return { ok: false, reason: `Access token longer than ${MAX_ACCESS_TOKEN_BYTES} bytes` };
    if (!looksLikeJwt(token)) return { ok: false, reason: "Access token is not a JWT" };
    const result = await this.jwt.verify(token, now);
    if (!result.ok) return { ok: false, reason: `Access token: ${result.reason}` };
    const { email, common_name: commonName } = result.claims;
    const name = typeof email === "string" && email !== "" ? email : commonName;
    if (typeof name !== "string" || name === "")
      return { ok: false, reason: "Access token has no email or common_name" };
    const problem = userNameProblem(name);
    if (problem !== null) return { ok: false, reason: `Access token: ${problem}` };
    return { ok: true, name, expiresAt: result.expiresAt };
  }
}
