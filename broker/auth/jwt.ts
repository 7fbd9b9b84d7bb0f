/**
 * JSON Web Tokens carried in the MQTT password field: HS256 with a shared secret;
 * RS256, ES256 and EdDSA (Ed25519) with keys from a JWKS (a URL fetched and
 * cached, jwks.ts, or a static JWKS for offline use). Requires exp; checks exp,
 * nbf, iss and aud; with JWKS_URL, iss and aud are required (an identity
 * provider signs every tenant's tokens with the same keys: the issuer and
 * audience are what say a token was made for this broker).
 *
 * Written to match `jose` (jwtVerify with createRemoteJWKSet) rather than using
 * it: the broker has no runtime dependency, keeps known keys while an issuer is
 * down, and bounds the JWKS it reads (README, Authentication).
 */
import { fromBase64Url } from "../json.ts";
import { parseJwks, RemoteJwks } from "./jwks.ts";

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

/** `expiresAt`: epoch ms from which the token is refused (exp plus the leeway). */
export type JwtResult = { ok: true; claims: JwtClaims; expiresAt: number } | { ok: false; reason: string };

/** Algorithms verified with a JWKS key, and what each needs of the key. */
const ASYMMETRIC = {
  RS256: { kty: "RSA", import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: "RSASSA-PKCS1-v1_5" },
  ES256: {
    kty: "EC",
    crv: "P-256",
    import: { name: "ECDSA", namedCurve: "P-256" },
    verify: { name: "ECDSA", hash: "SHA-256" },
  },
  EdDSA: { kty: "OKP", crv: "Ed25519", import: { name: "Ed25519" }, verify: "Ed25519" },
} as const;
type AsymmetricAlg = keyof typeof ASYMMETRIC;

/** Keys tried for one token at most: those its kid names (or, without a kid, the only one that fits). */
export const MAX_KEYS_TRIED = 4;
/** RSA keys shorter than this are not used (as jose: RFC 7518 3.3). */
const MIN_RSA_BITS = 2048;

export function looksLikeJwt(password: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(password);
}

function json(part: string): unknown {
  return JSON.parse(new TextDecoder().decode(fromBase64Url(part)));
}

interface Header {
  alg?: unknown;
  kid?: unknown;
  crit?: unknown;
}

export class JwtVerifier {
  private readonly config: JwtConfig;
  private hmacKey: Promise<CryptoKey> | undefined;
  private readonly staticKeys: JsonWebKey[];
  private readonly remote: RemoteJwks | undefined;
  /** Imported keys, per JWK and algorithm: a key is imported once, not at every CONNECT. */
  private readonly imported = new WeakMap<JsonWebKey, Promise<CryptoKey | null>>();

  constructor(config: JwtConfig) {
    this.config = config;
    this.staticKeys = config.jwks ? (parseJwks(config.jwks) ?? []) : [];
    this.remote = config.jwksUrl ? new RemoteJwks(config.jwksUrl) : undefined;
  }

  get enabled(): boolean {
    return Boolean(this.config.secret || this.config.jwks || this.config.jwksUrl);
  }

  /** The remote JWKS, if any (for tests of its fetches). */
  get jwks(): RemoteJwks | undefined {
    return this.remote;
  }

  async verify(token: string, now = Date.now()): Promise<JwtResult> {
    // A provider's keys sign every tenant's tokens: without both, another tenant's would do.
    if (this.remote !== undefined && (!this.config.issuer || !this.config.audience))
      return { ok: false, reason: "JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE" };
    const parts = token.split(".");
    if (parts.length !== 3) return { ok: false, reason: "not a JWT" };
    const [h, p, s] = parts as [string, string, string];
    let header: Header;
    let claims: JwtClaims;
    try {
      header = json(h) as Header;
      claims = json(p) as JwtClaims;
    } catch {
      return { ok: false, reason: "JWT is not valid JSON" };
    }
    if (header === null || typeof header !== "object") return { ok: false, reason: "JWT header" };
    // RFC 7515 4.1.11: extensions the token says must be understood; none are.
    if (header.crit !== undefined) return { ok: false, reason: "JWT crit header not understood" };
    const signed = new TextEncoder().encode(`${h}.${p}`);
    const signature = decoded(s);
    if (signature === undefined) return { ok: false, reason: "JWT signature is not base64url" };
    const valid = await this.checkSignature(header, signed, signature);
    if (valid !== true) return { ok: false, reason: valid };
    if (claims === null || typeof claims !== "object" || Array.isArray(claims))
      return { ok: false, reason: "JWT claims are not an object" };
    const seconds = now / 1000;
    const leeway = this.config.leeway ?? 30;
    // A token without an end is a password that never expires: refused (RFC 7519
    // makes exp optional; a broker facing the internet should not).
    if (typeof claims.exp !== "number" || !Number.isFinite(claims.exp))
      return { ok: false, reason: "JWT has no numeric exp" };
    if (seconds > claims.exp + leeway) return { ok: false, reason: "JWT expired" };
    if (claims.nbf !== undefined) {
      if (typeof claims.nbf !== "number" || !Number.isFinite(claims.nbf))
        return { ok: false, reason: "JWT nbf is not a number" };
      if (seconds < claims.nbf - leeway) return { ok: false, reason: "JWT not yet valid" };
    }
    if (this.config.issuer && claims.iss !== this.config.issuer) return { ok: false, reason: "JWT issuer" };
    if (this.config.audience) {
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (!aud.includes(this.config.audience)) return { ok: false, reason: "JWT audience" };
    }
    return { ok: true, claims, expiresAt: (claims.exp + leeway) * 1000 };
  }

  private async checkSignature(header: Header, data: Uint8Array, sig: Uint8Array): Promise<true | string> {
    const alg = header.alg;
    if (alg === "HS256") {
      if (!this.config.secret) return "HS256 tokens are not accepted";
      this.hmacKey ??= crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(this.config.secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["verify"],
      );
      // crypto.subtle.verify compares in constant time.
      return (await crypto.subtle.verify("HMAC", await this.hmacKey, sig, data)) ? true : "JWT signature";
    }
    if (typeof alg !== "string" || !Object.hasOwn(ASYMMETRIC, alg))
      return `JWT algorithm ${String(alg)} not accepted`;
    if (header.kid !== undefined && typeof header.kid !== "string") return "JWT kid is not a string";
    const a = alg as AsymmetricAlg;
    const kid = header.kid;
    let candidates = keysFor(await this.keys(), a, kid);
    if (candidates.length === 0 && this.remote !== undefined) {
      // A key the cached set lacks: rotated at the issuer since we fetched (cooldown-bound).
      candidates = keysFor(await this.remote.reload(), a, kid);
    }
    if (candidates.length === 0) return "JWT signing key unknown";
    if (kid === undefined && candidates.length > 1) return "JWT names no key (kid) and several fit";
    for (const jwk of candidates.slice(0, MAX_KEYS_TRIED)) {
      const key = await this.importKey(jwk, a);
      if (key !== null && (await crypto.subtle.verify(ASYMMETRIC[a].verify, key, sig, data))) return true;
    }
    return "JWT signature";
  }

  private keys(): Promise<JsonWebKey[]> {
    return this.remote?.current() ?? Promise.resolve(this.staticKeys);
  }

  private importKey(jwk: JsonWebKey, alg: AsymmetricAlg): Promise<CryptoKey | null> {
    let key = this.imported.get(jwk);
    if (key === undefined) {
      key = crypto.subtle
        .importKey("jwk", publicPart(jwk), ASYMMETRIC[alg].import, false, ["verify"])
        // A key that does not import is not the one.
        .catch(() => null);
      this.imported.set(jwk, key);
    }
    return key;
  }
}

/** The keys that may have signed a token of `alg` naming `kid`, as jose selects them. */
function keysFor(keys: JsonWebKey[], alg: AsymmetricAlg, kid: string | undefined): JsonWebKey[] {
  const want = ASYMMETRIC[alg];
  return keys.filter((k) => {
    const named = k as JsonWebKey & { kid?: unknown };
    if (kid !== undefined && named.kid !== kid) return false;
    if (k.kty !== want.kty || (k.alg !== undefined && k.alg !== alg)) return false;
    if ("crv" in want && k.crv !== want.crv) return false;
    if (k.use !== undefined && k.use !== "sig") return false;
    if (k.key_ops !== undefined && !k.key_ops.includes("verify")) return false;
    if (alg === "RS256" && (typeof k.n !== "string" || (decoded(k.n)?.length ?? 0) * 8 < MIN_RSA_BITS))
      return false;
    return true;
  });
}

/** Bytes of base64url, or undefined for text that is none (a token's or a JWKS's, from outside). */
function decoded(text: string): Uint8Array | undefined {
  try {
    return fromBase64Url(text);
  } catch {
    return undefined;
  }
}

/** Only the public members: a JWKS that (wrongly) carries a private key is not imported as one. */
function publicPart(jwk: JsonWebKey): JsonWebKey {
  const out: JsonWebKey = { kty: jwk.kty };
  if (jwk.n !== undefined) out.n = jwk.n;
  if (jwk.e !== undefined) out.e = jwk.e;
  if (jwk.crv !== undefined) out.crv = jwk.crv;
  if (jwk.x !== undefined) out.x = jwk.x;
  if (jwk.y !== undefined) out.y = jwk.y;
  return out;
}
