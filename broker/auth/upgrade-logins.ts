/**
 * Logins from the WebSocket upgrade request (README, Browser logins and client
 * certificates). Browsers cannot set headers on a WebSocket, but on a route of the
 * app's own domain the upgrade carries what the browser holds for it: the app's
 * cookies, Cloudflare Access's assertion, a client certificate. The Worker reads
 * them here, each way in only when configured:
 *
 * | way in | setting | principal |
 * |---|---|---|
 * | `?token=<JWT>` in the URL | UPGRADE_QUERY_TOKEN=true and a JWT key | `jwt:<claim>`, as in the password field |
 * | client certificate (mTLS) | CLIENT_CERT_PRINCIPAL=cn or fingerprint | `cert:<name>` |
 * | Cloudflare Access | ACCESS_TEAM_DOMAIN and ACCESS_AUD | `access:<email>` |
 * | session cookie | UPGRADE_SESSION_SECRET (UPGRADE_SESSION_COOKIE) | `session:<name>` |
 *
 * At most one login comes out. A token in the query is what the client chose to
 * send: it comes first, and one that does not verify refuses the upgrade (401).
 * The others are ambient, sent by the browser whatever the page wants: the first
 * that verifies, in the table's order, is the login, and one that does not verify
 * is logged and passed over (a stale cookie must not keep a client from logging in
 * with a password at CONNECT).
 *
 * Ambient credentials are also what a page of another site can make a browser
 * send (Cross-Site WebSocket Hijacking: evil.example opens a socket to the app's
 * broker, and the browser attaches the app's cookies and its client certificate).
 * So they count only from a request with no Origin (not a browser: it holds the
 * credential itself), or from the broker's own origin, or an origin listed in
 * ALLOWED_ORIGINS; from any other page the socket gets no login from them.
 */
import { ACCESS_COOKIE, ACCESS_HEADER, AccessVerifier, accessTeamDomain } from "./access-jwt.ts";
import { tokenLogin } from "./authenticator.ts";
import { type CertPrincipal, certificateLogin, type PresentedCertificate } from "./client-cert.ts";
import { parseJwks } from "./jwks.ts";
import { type JwtConfig, JwtVerifier, looksLikeJwt } from "./jwt.ts";
import { cookieValues, MIN_SESSION_SECRET_BYTES, SessionCookies } from "./session-cookie.ts";
import {
  encodeUpgradeIdentity,
  type UpgradeIdentity,
  type UpgradeLoginVia,
  upgradeIdentityProblem,
} from "./upgrade-identity.ts";

/** The settings these logins read (wrangler.toml vars and secrets; BrokerEnv extends it). */
export interface UpgradeLoginEnv {
  /** A session cookie's HMAC key, a secret of 32 bytes at least; unset: no session cookies. */
  UPGRADE_SESSION_SECRET?: string;
  /** The session cookie's name (DEFAULT_SESSION_COOKIE unless set). */
  UPGRADE_SESSION_COOKIE?: string;
  /** Cloudflare Access: the team (`<team>.cloudflareaccess.com`) and the application's AUD tag, both or neither. */
  ACCESS_TEAM_DOMAIN?: string;
  ACCESS_AUD?: string;
  /** The team's keys as a JWKS document, instead of fetching them (offline development, tests). */
  ACCESS_JWKS?: string;
  /** Client certificates (mTLS): "cn" or "fingerprint" names the principal; unset: not read. */
  CLIENT_CERT_PRINCIPAL?: string;
  /** The issuer's DN (RFC 2253) client certificates must have; unset: any the zone's mTLS verified. */
  CLIENT_CERT_ISSUER?: string;
  /** "true": a JWT in the upgrade's `?token=` logs in (URLs end up in logs). */
  UPGRADE_QUERY_TOKEN?: string;
  /** The JWT settings (the password field's, jwt.ts), for a token in the query. */
  JWT_SECRET?: string;
  JWKS?: string;
  /** JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE (auth/jwt.ts). */
  JWKS_URL?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  JWT_IDENTITY_CLAIM?: string;
  /** Origins allowed to open a WebSocket (comma-separated); any when unset. */
  ALLOWED_ORIGINS?: string;
}

export interface UpgradeLoginSettings {
  session?: { secret: string; cookie: string };
  access?: { teamDomain: string; aud: string; jwks?: string };
  certificate?: { principal: CertPrincipal; issuer?: string };
  queryToken?: { jwt: JwtConfig; identityClaim: string };
  /** ALLOWED_ORIGINS: pages whose ambient credentials count, besides the broker's own origin. */
  allowedOrigins: string[];
}

export const DEFAULT_SESSION_COOKIE = "nimbus_session";
/** The query parameter a token comes in. */
export const QUERY_TOKEN_PARAMETER = "token";
/** The longest query token looked at. */
export const MAX_QUERY_TOKEN_BYTES = 8 * 1024;

/** A cookie name as RFC 6265 4.1.1 allows one (an HTTP token). */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/;

/** The settings, and every problem with them (readConfig refuses the configuration with any). */
export function readUpgradeLoginSettings(env: UpgradeLoginEnv): {
  settings: UpgradeLoginSettings;
  problems: string[];
} {
  const problems: string[] = [];
  const set = (v: string | undefined) => (v !== undefined && v.trim() !== "" ? v.trim() : undefined);
  const settings: UpgradeLoginSettings = {
    allowedOrigins: (env.ALLOWED_ORIGINS ?? "")
      .split(",")
      .map((o) => o.trim())
      .filter((o) => o !== ""),
  };
  const secret = env.UPGRADE_SESSION_SECRET;
  const cookie = set(env.UPGRADE_SESSION_COOKIE) ?? DEFAULT_SESSION_COOKIE;
  if (!COOKIE_NAME.test(cookie)) problems.push(`UPGRADE_SESSION_COOKIE=${cookie} is not a cookie name`);
  if (secret !== undefined && secret !== "") {
    // A short secret could be searched from one cookie (a signed name and time anyone can see).
    if (new TextEncoder().encode(secret).length < MIN_SESSION_SECRET_BYTES)
      problems.push(
        `UPGRADE_SESSION_SECRET has fewer than ${MIN_SESSION_SECRET_BYTES} bytes (openssl rand -base64 32)`,
      );
    else settings.session = { secret, cookie };
  }
  const team = set(env.ACCESS_TEAM_DOMAIN);
  const aud = set(env.ACCESS_AUD);
  if (team !== undefined || aud !== undefined) {
    const domain = team === undefined ? undefined : accessTeamDomain(team);
    // Without the AUD, any Access application of the team would do.
    if (team === undefined || aud === undefined)
      problems.push(
        "ACCESS_TEAM_DOMAIN and ACCESS_AUD go together (else any application of the team gets in)",
      );
    else if (domain === undefined)
      problems.push(`ACCESS_TEAM_DOMAIN=${team} is not <team>.cloudflareaccess.com`);
    else {
      const jwks = set(env.ACCESS_JWKS);
      if (jwks !== undefined && parseJwks(jwks) === undefined) problems.push("ACCESS_JWKS is not a JWKS");
      settings.access = jwks === undefined ? { teamDomain: domain, aud } : { teamDomain: domain, aud, jwks };
    }
  } else if (set(env.ACCESS_JWKS) !== undefined) {
    problems.push("ACCESS_JWKS needs ACCESS_TEAM_DOMAIN and ACCESS_AUD");
  }
  const cert = set(env.CLIENT_CERT_PRINCIPAL);
  if (cert !== undefined) {
    if (cert !== "cn" && cert !== "fingerprint")
      problems.push(`CLIENT_CERT_PRINCIPAL=${cert} is neither cn nor fingerprint`);
    else {
      const issuer = set(env.CLIENT_CERT_ISSUER);
      settings.certificate = issuer === undefined ? { principal: cert } : { principal: cert, issuer };
    }
  } else if (set(env.CLIENT_CERT_ISSUER) !== undefined) {
    problems.push("CLIENT_CERT_ISSUER needs CLIENT_CERT_PRINCIPAL (cn or fingerprint)");
  }
  if (env.UPGRADE_QUERY_TOKEN === "true") {
    const jwt: JwtConfig = {
      secret: env.JWT_SECRET,
      jwks: env.JWKS,
      jwksUrl: env.JWKS_URL,
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
    };
    if (!jwt.secret && !jwt.jwks && !jwt.jwksUrl)
      problems.push("UPGRADE_QUERY_TOKEN=true needs a JWT key (JWT_SECRET, JWKS or JWKS_URL)");
    else settings.queryToken = { jwt, identityClaim: set(env.JWT_IDENTITY_CLAIM) ?? "sub" };
  } else if (env.UPGRADE_QUERY_TOKEN !== undefined && env.UPGRADE_QUERY_TOKEN !== "false") {
    problems.push(`UPGRADE_QUERY_TOKEN=${env.UPGRADE_QUERY_TOKEN} is neither true nor false`);
  }
  return { settings, problems };
}

/** What the upgrade request says about who the client is. */
export type UpgradeOutcome =
  /** No login: CONNECT's credentials decide, as without this. */
  | { kind: "none"; passedOver: string[] }
  /** A login, and the header value that carries it to the Gateway. */
  | { kind: "login"; login: UpgradeIdentity; header: string; passedOver: string[] }
  /** The client asked for a login that does not verify: the upgrade is refused (401). */
  | { kind: "refused"; reason: string };

export class UpgradeLogins {
  private readonly settings: UpgradeLoginSettings;
  private readonly sessions: SessionCookies | undefined;
  private readonly access: AccessVerifier | undefined;
  private readonly queryJwt: JwtVerifier | undefined;

  constructor(settings: UpgradeLoginSettings) {
    this.settings = settings;
    this.sessions = settings.session && new SessionCookies(settings.session.secret);
    const access = settings.access;
    this.access = access && new AccessVerifier(access.teamDomain, access.aud, access.jwks);
    this.queryJwt = settings.queryToken && new JwtVerifier(settings.queryToken.jwt);
  }

  /** Whether any way in is configured: with none, an upgrade is not looked at. */
  get enabled(): boolean {
    const s = this.settings;
    return Boolean(s.session || s.access || s.certificate || s.queryToken);
  }

  /** The Access verifier (for tests of its JWKS fetches). */
  get accessVerifier(): AccessVerifier | undefined {
    return this.access;
  }

  /**
   * The login of an upgrade request. `cf` is the request's `cf` object (where the
   * client certificate's verdict is), passed apart so that tests need no runtime
   * that sets it.
   */
  async identify(
    request: Request,
    cf: { tlsClientAuth?: PresentedCertificate } | undefined,
    now = Date.now(),
  ): Promise<UpgradeOutcome> {
    const passedOver: string[] = [];
    const chosen = await this.fromQuery(request, now);
    if (chosen !== undefined) {
      if (!chosen.ok) return { kind: "refused", reason: chosen.reason };
      return this.outcome(chosen.login, passedOver);
    }
    if (!this.ambientAllowed(request)) return { kind: "none", passedOver };
    for (const way of [
      () => this.fromCertificate(cf?.tlsClientAuth, now),
      () => this.fromAccess(request, now),
      () => this.fromSessionCookie(request, now),
    ]) {
      const found = await way();
      if (found === undefined) continue;
      if (found.ok) return this.outcome(found.login, passedOver);
      passedOver.push(found.reason);
    }
    return { kind: "none", passedOver };
  }

  private outcome(login: UpgradeIdentity, passedOver: string[]): UpgradeOutcome {
    // What the Gateway would not read back (upgradeIdentityOf) is said here, with why:
    // a token's claim naming no principal a name may be, a client_id too long to keep.
    const problem = upgradeIdentityProblem(login);
    if (problem !== null)
      return { kind: "refused", reason: `login's ${problem} is not one a principal may have` };
    const header = encodeUpgradeIdentity(login);
    if (header === undefined)
      return {
        kind: "refused",
        reason: "login too large for an upgrade (send the token in CONNECT instead)",
      };
    return { kind: "login", login, header, passedOver };
  }

  /**
   * Whether the browser's own credentials may count: no Origin (not a browser),
   * or a page of the broker's own origin or of ALLOWED_ORIGINS.
   */
  private ambientAllowed(request: Request): boolean {
    const origin = request.headers.get("Origin");
    if (origin === null) return true;
    return origin === ownOrigin(request.url) || this.settings.allowedOrigins.includes(origin);
  }

  private async fromQuery(request: Request, now: number): Promise<Found | undefined> {
    const settings = this.settings.queryToken;
    if (settings === undefined || this.queryJwt === undefined) return undefined;
    const tokens = new URL(request.url).searchParams.getAll(QUERY_TOKEN_PARAMETER);
    if (tokens.length === 0) return undefined;
    if (tokens.length > 1) return { ok: false, reason: "more than one token in the query" };
    const token = tokens[0] as string;
    if (token.length > MAX_QUERY_TOKEN_BYTES)
      return { ok: false, reason: `query token longer than ${MAX_QUERY_TOKEN_BYTES} bytes` };
    if (!looksLikeJwt(token)) return { ok: false, reason: "query token is not a JWT" };
    const verified = await this.queryJwt.verify(token, now);
    if (!verified.ok) return { ok: false, reason: `query token: ${verified.reason}` };
    const login = tokenLogin(verified.claims, settings.identityClaim, verified.expiresAt);
    if (!login.ok) return { ok: false, reason: `query token: ${login.reason}` };
    const { ok: _ok, ...upgrade } = login;
    return { ok: true, login: upgrade };
  }

  private fromCertificate(tls: PresentedCertificate | undefined, now: number): Found | undefined {
    const settings = this.settings.certificate;
    if (settings === undefined) return undefined;
    const result = certificateLogin(tls, settings, now);
    if (result.ok === "none") return undefined;
    if (!result.ok) return result;
    return named("certificate", result.name, result.expiresAt);
  }

  private async fromAccess(request: Request, now: number): Promise<Found | undefined> {
    if (this.access === undefined) return undefined;
    // Cloudflare recommends the header; the cookie is not always passed on.
    const header = request.headers.get(ACCESS_HEADER);
    const cookies = cookieValues(request.headers.get("Cookie"), ACCESS_COOKIE);
    const token = header ?? single(cookies);
    if (token === undefined)
      return cookies.length > 1 ? { ok: false, reason: "several Access cookies" } : undefined;
    const result = await this.access.verify(token, now);
    return result.ok ? named("access", result.name, result.expiresAt) : result;
  }

  private async fromSessionCookie(request: Request, now: number): Promise<Found | undefined> {
    const settings = this.settings.session;
    if (settings === undefined || this.sessions === undefined) return undefined;
    const values = cookieValues(request.headers.get("Cookie"), settings.cookie);
    if (values.length === 0) return undefined;
    // Two cookies of the name (one set for a parent domain by a sibling site, say):
    // choosing either could log the browser in as someone else's session.
    const value = single(values);
    if (value === undefined) return { ok: false, reason: `several ${settings.cookie} cookies` };
    const result = await this.sessions.verify(value, now);
    return result.ok ? named("session", result.name, result.expiresAt) : result;
  }
}

type Found = { ok: true; login: UpgradeIdentity } | { ok: false; reason: string };

function named(via: UpgradeLoginVia, username: string, expiresAt: number | undefined): Found {
  const identity: UpgradeIdentity["identity"] = { username, via };
  if (expiresAt !== undefined) identity.expiresAt = expiresAt;
  return { ok: true, login: { identity } };
}

function single(values: string[]): string | undefined {
  return values.length === 1 ? values[0] : undefined;
}

/** The origin a page of the broker itself sends (ws: and wss: URLs are its http: and https:). */
export function ownOrigin(url: string): string {
  const u = new URL(url);
  const scheme = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  return `${scheme}//${u.host}`;
}
