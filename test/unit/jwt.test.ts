/**
 * Tokens (docs/security.md, Authentication): RS256, ES256 and EdDSA keys from a JWKS, key
 * rotation (a new kid is fetched at once, a flood of unknown kids costs one fetch
 * per cooldown), iss and aud required with JWKS_URL (another tenant of the same
 * provider is refused), the token's end in the Identity, and one principal
 * namespace per way in.
 */
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConnectAuthenticator, legacyOwnerOf, ownerOf } from "../../broker/auth/authenticator.ts";
import { JWKS_CACHE_MS, JWKS_COOLDOWN_MS, JWKS_MAX_BYTES } from "../../broker/auth/jwks.ts";
import { JwtVerifier } from "../../broker/auth/jwt.ts";
import { ConfigError, readConfig } from "../../broker/config.ts";

const ISSUER = "https://idp.example/tenant-a";
const AUDIENCE = "nimbus";
const URL_ = "https://idp.example/tenant-a/jwks";
const utf8 = (s: string) => new TextEncoder().encode(s);
const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64url");

type Alg = "RS256" | "ES256" | "EdDSA";
interface Key {
  alg: Alg;
  kid: string;
  privateKey: KeyObject;
  jwk: JsonWebKey & { kid: string };
}

function newKey(alg: Alg, kid: string): Key {
  const pair =
    alg === "RS256"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : alg === "ES256"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("ed25519");
  const jwk = { ...(pair.publicKey.export({ format: "jwk" }) as JsonWebKey), kid, alg };
  return { alg, kid, privateKey: pair.privateKey, jwk };
}

function signed(key: Key, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const data = `${b64({ alg: key.alg, kid: key.kid, ...header })}.${b64({
    iss: ISSUER,
    aud: AUDIENCE,
    exp: now + 300,
    ...claims,
  })}`;
  const sig =
    key.alg === "RS256"
      ? sign("sha256", Buffer.from(data), key.privateKey)
      : key.alg === "ES256"
        ? sign("sha256", Buffer.from(data), { key: key.privateKey, dsaEncoding: "ieee-p1363" })
        : sign(null, Buffer.from(data), key.privateKey);
  return `${data}.${sig.toString("base64url")}`;
}

/** An issuer's JWKS endpoint: serves `keys`, counts fetches. */
function issuer(keys: Key[]) {
  const served = { keys, fetches: 0 };
  vi.stubGlobal("fetch", async (url: string) => {
    expect(url).toBe(URL_);
    served.fetches++;
    return new Response(JSON.stringify({ keys: served.keys.map((k) => k.jwk) }));
  });
  return served;
}

const remote = () => new JwtVerifier({ jwksUrl: URL_, issuer: ISSUER, audience: AUDIENCE });

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"], now: new Date("2026-12-03T08:00:00Z") });
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("algorithms from a JWKS", () => {
  it.each(["RS256", "ES256", "EdDSA"] as const)(
    "%s: a token signed with the key is accepted, a tampered one not",
    async (alg) => {
      const key = newKey(alg, `k-${alg}`);
      const verifier = new JwtVerifier({ jwks: JSON.stringify({ keys: [key.jwk] }) });
      const token = signed(key, { sub: "dev-1" });
      expect(await verifier.verify(token)).toMatchObject({ ok: true, claims: { sub: "dev-1" } });
      const [h, , s] = token.split(".");
      const forged = `${h}.${b64({ sub: "admin", exp: Math.floor(Date.now() / 1000) + 300 })}.${s}`;
      expect(await verifier.verify(forged)).toMatchObject({ ok: false, reason: "JWT signature" });
    },
  );

  it("a key of another type or curve, alg none, crit headers, and a missing kid among several keys are refused", async () => {
    const rsa = newKey("RS256", "r");
    const ec = newKey("ES256", "e");
    const ed = newKey("EdDSA", "d");
    const verifier = new JwtVerifier({ jwks: JSON.stringify({ keys: [rsa.jwk, ec.jwk, ed.jwk] }) });
    // An ES256 token naming the RSA key's kid.
    expect(await verifier.verify(signed({ ...ec, kid: "r" }, { sub: "x" }))).toMatchObject({ ok: false });
    expect(await verifier.verify(signed(ec, { sub: "x" }, { alg: "none" }))).toMatchObject({
      ok: false,
      reason: "JWT algorithm none not accepted",
    });
    expect(await verifier.verify(signed(ec, { sub: "x" }, { crit: ["exp"] }))).toMatchObject({ ok: false });
    // HS256 with the public key as its secret: no secret configured, refused.
    expect(await verifier.verify(signed(ec, { sub: "x" }, { alg: "HS256" }))).toMatchObject({
      ok: false,
      reason: "HS256 tokens are not accepted",
    });
    const second = newKey("ES256", "e2");
    const two = new JwtVerifier({ jwks: JSON.stringify({ keys: [ec.jwk, second.jwk] }) });
    expect(await two.verify(signed(ec, { sub: "x" }, { kid: undefined }))).toMatchObject({
      ok: false,
      reason: "JWT names no key (kid) and several fit",
    });
    const one = new JwtVerifier({ jwks: JSON.stringify({ keys: [ec.jwk] }) });
    expect(await one.verify(signed(ec, { sub: "x" }, { kid: undefined }))).toMatchObject({ ok: true });
  });

  it("an RSA key shorter than 2,048 bits is not used", async () => {
    const pair = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const weak: Key = {
      alg: "RS256",
      kid: "weak",
      privateKey: pair.privateKey,
      jwk: { ...(pair.publicKey.export({ format: "jwk" }) as JsonWebKey), kid: "weak" },
    };
    const verifier = new JwtVerifier({ jwks: JSON.stringify({ keys: [weak.jwk] }) });
    expect(await verifier.verify(signed(weak, { sub: "x" }))).toMatchObject({
      ok: false,
      reason: "JWT signing key unknown",
    });
  });
});

describe("malformed tokens are refused, never thrown", () => {
  it("a signature or key whose base64url cannot be decoded is a refusal with its reason", async () => {
    const key = newKey("RS256", "k");
    const verifier = new JwtVerifier({ jwks: JSON.stringify({ keys: [key.jwk] }), secret: "s" });
    const token = signed(key, { sub: "a" });
    // A signature of 4k+1 characters is no base64url at all (RFC 4648 section 5).
    const cut = token.slice(0, token.length - ((token.split(".")[2] as string).length % 4) - 3);
    expect((cut.split(".")[2] as string).length % 4).toBe(1);
    expect(await verifier.verify(cut)).toEqual({ ok: false, reason: "JWT signature is not base64url" });
    // A JWKS whose RSA modulus is not base64url: that key is not used.
    const broken = new JwtVerifier({ jwks: JSON.stringify({ keys: [{ ...key.jwk, n: "abcde" }] }) });
    expect(await broken.verify(token)).toEqual({ ok: false, reason: "JWT signing key unknown" });
  });
});

describe("key rotation (as jose's remote JWKS)", () => {
  it("a token signed with a new key under a new kid is accepted at once, without waiting for the cache to age", async () => {
    const old = newKey("ES256", "2026-11");
    const idp = issuer([old]);
    const verifier = remote();
    expect(await verifier.verify(signed(old, { sub: "a" }))).toMatchObject({ ok: true });
    expect(idp.fetches).toBe(1);
    // Minutes later (well within the 10-minute cache) the issuer rotates.
    vi.advanceTimersByTime(2 * 60_000);
    const next = newKey("EdDSA", "2026-12");
    idp.keys = [old, next];
    expect(await verifier.verify(signed(next, { sub: "b" }))).toMatchObject({
      ok: true,
      claims: { sub: "b" },
    });
    expect(idp.fetches).toBe(2);
    // Known kids cost no fetch; the cache ages after 10 minutes.
    expect(await verifier.verify(signed(old, { sub: "a" }))).toMatchObject({ ok: true });
    expect(idp.fetches).toBe(2);
    vi.advanceTimersByTime(JWKS_CACHE_MS);
    expect(await verifier.verify(signed(old, { sub: "a" }))).toMatchObject({ ok: true });
    expect(idp.fetches).toBe(3);
  });

  it("a flood of unknown kids fetches at most once per cooldown, concurrent ones sharing the fetch", async () => {
    const key = newKey("RS256", "real");
    const idp = issuer([key]);
    const verifier = remote();
    expect(await verifier.verify(signed(key, { sub: "a" }))).toMatchObject({ ok: true });
    vi.advanceTimersByTime(JWKS_COOLDOWN_MS);
    const made = Array.from({ length: 200 }, (_, i) => signed({ ...key, kid: `made-up-${i}` }, { sub: "x" }));
    const results = await Promise.all(made.map((t) => verifier.verify(t)));
    expect(results.every((r) => !r.ok)).toBe(true);
    for (const t of made.slice(0, 50)) await verifier.verify(t);
    // One fetch for the whole flood within the cooldown (plus the first).
    expect(idp.fetches).toBe(2);
    vi.advanceTimersByTime(JWKS_COOLDOWN_MS - 1);
    await verifier.verify(made[0] as string);
    expect(idp.fetches).toBe(2);
    vi.advanceTimersByTime(1);
    await verifier.verify(made[0] as string);
    expect(idp.fetches).toBe(3);
  });

  it("a failing issuer is asked once per cooldown, and the keys known so far keep serving", async () => {
    const key = newKey("ES256", "k");
    const idp = issuer([key]);
    const verifier = remote();
    expect(await verifier.verify(signed(key, { sub: "a" }))).toMatchObject({ ok: true });
    vi.stubGlobal("fetch", async () => {
      idp.fetches++;
      return new Response("down", { status: 503 });
    });
    vi.advanceTimersByTime(JWKS_CACHE_MS);
    const tokens = Array.from({ length: 20 }, () => signed(key, { sub: "a" }));
    const results = await Promise.all(tokens.map((t) => verifier.verify(t)));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(idp.fetches).toBe(2);
  });
});

describe("the JWKS read is bounded", () => {
  it.each([
    [JWKS_MAX_BYTES, true],
    [JWKS_MAX_BYTES + 1, false],
  ])("a JWKS of %i bytes holding the key: accepted %s", async (size, accepted) => {
    const key = newKey("ES256", "k");
    const body = JSON.stringify({ keys: [key.jwk], pad: "" });
    const padded = body.replace('"pad":""', `"pad":"${"x".repeat(size - body.length)}"`);
    expect(padded.length).toBe(size);
    vi.stubGlobal("fetch", async () => new Response(padded));
    expect((await remote().verify(signed(key, { sub: "a" }))).ok).toBe(accepted);
  });
});

describe("another tenant of the same identity provider", () => {
  it("JWKS_URL without JWT_ISSUER and JWT_AUDIENCE is refused by readConfig and by the verifier", async () => {
    expect(() => readConfig({ JWKS_URL: URL_ })).toThrow(ConfigError);
    expect(() => readConfig({ JWKS_URL: URL_, JWT_ISSUER: ISSUER })).toThrow(/JWT_ISSUER and JWT_AUDIENCE/);
    expect(readConfig({ JWKS_URL: URL_, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE }).acl).toBeUndefined();
    const key = newKey("RS256", "k");
    issuer([key]);
    const open = new JwtVerifier({ jwksUrl: URL_ });
    expect(await open.verify(signed(key, { sub: "a" }))).toMatchObject({
      ok: false,
      reason: "JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE",
    });
  });

  it("a token signed with the provider's key for another tenant or audience is refused", async () => {
    const key = newKey("RS256", "shared");
    issuer([key]);
    const verifier = remote();
    expect(await verifier.verify(signed(key, { sub: "a" }))).toMatchObject({ ok: true });
    expect(
      await verifier.verify(signed(key, { sub: "a", iss: "https://idp.example/tenant-b" })),
    ).toMatchObject({
      ok: false,
      reason: "JWT issuer",
    });
    expect(await verifier.verify(signed(key, { sub: "a", aud: "other-app" }))).toMatchObject({
      ok: false,
      reason: "JWT audience",
    });
    expect(await verifier.verify(signed(key, { sub: "a", iss: undefined }))).toMatchObject({ ok: false });
  });
});

describe("the token's end and its principal", () => {
  it("the Identity carries expiresAt: the token's exp plus the leeway, in epoch ms", async () => {
    const key = newKey("ES256", "k");
    const auth = new ConnectAuthenticator({
      allowAnonymous: false,
      jwt: { jwks: JSON.stringify({ keys: [key.jwk] }), leeway: 30 },
    });
    const exp = Math.floor(Date.now() / 1000) + 120;
    const result = await auth.authenticate({ clientId: "c", password: utf8(signed(key, { sub: "d", exp })) });
    expect(result).toEqual({
      ok: true,
      identity: { username: "d", via: "jwt", expiresAt: (exp + 30) * 1000 },
    });
  });

  it("passwords, tokens, enhanced authentication and unverified names are distinct principals", () => {
    const owners = (["password", "jwt", "auth-method", "anonymous"] as const).map((via) =>
      ownerOf({ username: "alice", via }),
    );
    expect(new Set(owners).size).toBe(4);
    expect(owners[0]).toBe("user:alice");
    expect(ownerOf({ via: "anonymous" })).toBe("anonymous");
    expect(ownerOf({ username: "anonymous", via: "password" })).not.toBe("anonymous");
    // Before namespaces every named principal was user:<name>: the same login finds its session.
    for (const owner of owners) expect(legacyOwnerOf(owner)).toBe("user:alice");
    expect(legacyOwnerOf("anonymous")).toBe("anonymous");
  });
});
