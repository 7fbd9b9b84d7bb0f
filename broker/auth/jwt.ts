/**
 * JSON Web Tokens carried in the MQTT password field: HS256 with a shared secret,
 * RS256 and ES256 with keys from a JWKS (a URL fetched and cached, or a static JWKS
 * for offline use). Requires exp; checks exp, nbf, iss and aud.
 */
import { readBounded } from "../bounded-read.ts";
import { fromBase64 } from "../json.ts";

export interface JwtConfig {
  secret?: string;
  /** A JWKS document, as JSON text. */
  jwks?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Seconds of clock skew tolerated on exp and nbf. */
  leeway?: number;
}

export type JwtClaims = Record<string, unknown> & {
  sub?: string;
  exp?: number;
  nbf?: number;
  iss?: string;
  aud?: string | string[];
};

export type JwtResult = { ok: true; claims: JwtClaims } | { ok: false; reason: string };

/** How long fetched keys are used before they are fetched again. */
const JWKS_CACHE_MS = 10 * 60 * 1000;
/** After a failed fetch, how long the keys known so far are used before trying again. */
const JWKS_RETRY_MS = 30 * 1000;
/** A JWKS fetch that takes longer fails. */
const JWKS_TIMEOUT_MS = 5_000;
/** A JWKS larger than this is refused (a few keys take a few KiB). */
const JWKS_MAX_BYTES = 64 * 1024;

export function looksLikeJwt(password: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(password);
}

function base64url(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  return fromBase64(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
}

function json(part: string): unknown {
  return JSON.parse(new TextDecoder().decode(base64url(part)));
}

export class JwtVerifier {
  private readonly config: JwtConfig;
  private hmacKey: Promise<CryptoKey> | undefined;
  /** Keys fetched from jwksUrl, good until `until` (epoch ms). */
  private jwksCache: { until: number; keys: JsonWebKey[] } | undefined;
  private jwksFetch: Promise<JsonWebKey[]> | undefined;

  constructor(config: JwtConfig) {
    this.config = config;
  }

  get enabled(): boolean {
    return Boolean(this.config.secret || this.config.jwks || this.config.jwksUrl);
  }

  async verify(token: string, now = Date.now()): Promise<JwtResult> {
    const parts = token.split(".");
    if (parts.length !== 3) return { ok: false, reason: "not a JWT" };
    const [h, p, s] = parts as [string, string, string];
    let header: { alg?: string; kid?: string };
    let claims: JwtClaims;
    try {
      header = json(h) as typeof header;
      claims = json(p) as JwtClaims;
    } catch {
      return { ok: false, reason: "JWT is not valid JSON" };
    }
    const signed = new TextEncoder().encode(`${h}.${p}`);
    const signature = base64url(s);
    const valid = await this.checkSignature(header, signed, signature);
    if (valid !== true) return { ok: false, reason: valid };
    if (claims === null || typeof claims !== "object" || Array.isArray(claims))
      return { ok: false, reason: "JWT claims are not an object" };
    const seconds = now / 1000;
    const leeway = this.config.leeway ?? 30;
    // A token without an end is a password that never expires: refused (RFC 7519
    // makes exp optional; a broker facing the internet should not).
    if (!Number.isFinite(claims.exp)) return { ok: false, reason: "JWT has no numeric exp" };
    if (seconds > (claims.exp as number) + leeway) return { ok: false, reason: "JWT expired" };
    if (claims.nbf !== undefined) {
      if (!Number.isFinite(claims.nbf)) return { ok: false, reason: "JWT nbf is not a number" };
      if (seconds < (claims.nbf as number) - leeway) return { ok: false, reason: "JWT not yet valid" };
    }
    if (this.config.issuer !== undefined && claims.iss !== this.config.issuer)
      return { ok: false, reason: "JWT issuer" };
    if (this.config.audience !== undefined) {
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (!aud.includes(this.config.audience)) return { ok: false, reason: "JWT audience" };
    }
    return { ok: true, claims };
  }

  private async checkSignature(
    header: { alg?: string; kid?: string },
    data: Uint8Array,
    sig: Uint8Array,
  ): Promise<true | string> {
    if (header.alg === "HS256") {
      if (!this.config.secret) return "HS256 tokens are not accepted";
      this.hmacKey ??= crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(this.config.secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["verify"],
      );
      return (await crypto.subtle.verify("HMAC", await this.hmacKey, sig, data)) ? true : "JWT signature";
    }
    if (header.alg !== "RS256" && header.alg !== "ES256")
      return `JWT algorithm ${String(header.alg)} not accepted`;
    const keys = (await this.keys()).filter(
      (k) =>
        (header.kid === undefined || (k as { kid?: string }).kid === header.kid) &&
        (k.alg === undefined || k.alg === header.alg),
    );
    for (const jwk of keys) {
      try {
        if (header.alg === "RS256" && jwk.kty === "RSA") {
          const key = await crypto.subtle.importKey(
            "jwk",
            jwk,
            { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
            false,
            ["verify"],
          );
          if (await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, sig, data)) return true;
        } else if (header.alg === "ES256" && jwk.kty === "EC") {
          const key = await crypto.subtle.importKey(
            "jwk",
            jwk,
            { name: "ECDSA", namedCurve: "P-256" },
            false,
            ["verify"],
          );
          if (await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, sig, data)) return true;
        }
      } catch {
        // a key that does not import is not the one
      }
    }
    return "JWT signature";
  }

  private async keys(): Promise<JsonWebKey[]> {
    if (this.config.jwks) return parseJwks(this.config.jwks) ?? [];
    if (!this.config.jwksUrl) return [];
    const now = Date.now();
    const cache = this.jwksCache;
    if (cache !== undefined && now < cache.until) return cache.keys;
    // One fetch at a time, whatever the number of CONNECTs waiting on it.
    this.jwksFetch ??= this.fetchJwks(this.config.jwksUrl, cache?.keys ?? []).finally(() => {
      this.jwksFetch = undefined;
    });
    return this.jwksFetch;
  }

  /**
   * Fetches the JWKS with a timeout and a size bound. A failure keeps the keys
   * known so far and is not retried for JWKS_RETRY_MS, so an unreachable issuer
   * costs one attempt per interval, not one per CONNECT.
   */
  private async fetchJwks(url: string, known: JsonWebKey[]): Promise<JsonWebKey[]> {
    const now = Date.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(JWKS_TIMEOUT_MS) });
      const text = res.ok ? await boundedText(res, JWKS_MAX_BYTES) : undefined;
      const keys = text === undefined ? undefined : parseJwks(text);
      if (keys !== undefined) {
        this.jwksCache = { until: now + JWKS_CACHE_MS, keys };
        return keys;
      }
    } catch {
      // unreachable, too slow or too large: as a failed answer
    }
    this.jwksCache = { until: now + JWKS_RETRY_MS, keys: known };
    return known;
  }
}

function parseJwks(text: string): JsonWebKey[] | undefined {
  try {
    const keys = (JSON.parse(text) as { keys?: unknown }).keys;
    return Array.isArray(keys) ? (keys as JsonWebKey[]) : undefined;
  } catch {
    return undefined;
  }
}

/** The body as text, or undefined if it is longer than `max` bytes. */
async function boundedText(res: Response, max: number): Promise<string | undefined> {
  const bytes = await readBounded(res.body, max);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}
