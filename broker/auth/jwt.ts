/**
 * JSON Web Tokens carried in the MQTT password field: HS256 with a shared secret,
 * RS256 and ES256 with keys from a JWKS (a URL fetched and cached, or a static JWKS
 * for offline use). Checks exp, nbf, iss and aud.
 */
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

const JWKS_CACHE_MS = 10 * 60 * 1000;

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
  private jwksCache: { at: number; keys: JsonWebKey[] } | undefined;

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
    const seconds = now / 1000;
    const leeway = this.config.leeway ?? 30;
    if (typeof claims.exp === "number" && seconds > claims.exp + leeway)
      return { ok: false, reason: "JWT expired" };
    if (typeof claims.nbf === "number" && seconds < claims.nbf - leeway)
      return { ok: false, reason: "JWT not yet valid" };
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
    if (this.config.jwks) return (JSON.parse(this.config.jwks) as { keys: JsonWebKey[] }).keys;
    if (!this.config.jwksUrl) return [];
    const now = Date.now();
    if (this.jwksCache === undefined || now - this.jwksCache.at > JWKS_CACHE_MS) {
      const res = await fetch(this.config.jwksUrl);
      if (!res.ok) return this.jwksCache?.keys ?? [];
      this.jwksCache = { at: now, keys: ((await res.json()) as { keys: JsonWebKey[] }).keys };
    }
    return this.jwksCache.keys;
  }
}
