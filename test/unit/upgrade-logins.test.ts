/**
 * Logins from the WebSocket upgrade (docs/security.md, Browser logins and client
 * certificates): each verifier against hostile input (expired, wrong audience or
 * issuer, bad signature, tampered cookie, oversized values, a certificate that did
 * not verify or was revoked), which login wins when several are present, what
 * pages of other sites get (Cross-Site WebSocket Hijacking), the header that
 * carries a login to the Gateway, and what a login counts for at CONNECT.
 */
import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { serialize } from "node:v8";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AccessVerifier, accessTeamDomain, MAX_ACCESS_TOKEN_BYTES } from "../../broker/auth/access-jwt.ts";
import { ConnectAuthenticator, legacyOwnerOf, ownerOf } from "../../broker/auth/authenticator.ts";
import { certificateLogin, notAfter, parseDn } from "../../broker/auth/client-cert.ts";
import { cookieValues, MAX_SESSION_COOKIE_BYTES, SessionCookies } from "../../broker/auth/session-cookie.ts";
import {
  encodeUpgradeIdentity,
  identityAtConnect,
  MAX_UPGRADE_IDENTITY_BYTES,
  UPGRADE_IDENTITY_HEADER,
  type UpgradeIdentity,
  upgradeIdentityOf,
} from "../../broker/auth/upgrade-identity.ts";
import {
  readUpgradeLoginSettings,
  type UpgradeLoginEnv,
  UpgradeLogins,
  type UpgradeOutcome,
} from "../../broker/auth/upgrade-logins.ts";
import { ConfigError, readConfig } from "../../broker/config.ts";
import type { AwaitingConnect } from "../../durable-objects/gateway/connection.ts";
import { CERT_NOT_AFTER, presentedCertificate } from "../support/certificates.ts";

const NOW = new Date("2026-12-03T08:00:00Z").getTime();
const SECONDS = Math.floor(NOW / 1000);
const SESSION_SECRET = "s".repeat(32);
const JWT_SECRET = "query-token-secret";
const TEAM = "acme.cloudflareaccess.com";
const AUD = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";
const CERTS = `https://${TEAM}/cdn-cgi/access/certs`;
const BROKER = "https://mqtt.acme.example/mqtt";
const utf8 = (s: string) => new TextEncoder().encode(s);
const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64url");

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"], now: NOW });
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

// ---- helpers ----------------------------------------------------------------

/** A session cookie made as the README tells an app's backend to make one (Node's crypto). */
function mintedByApp(name: string, exp: number, secret = SESSION_SECRET): string {
  const body = `v1.${Buffer.from(name).toString("base64url")}.${exp}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

function hs256(claims: Record<string, unknown>, secret = JWT_SECRET): string {
  const data = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ exp: SECONDS + 300, ...claims })}`;
  return `${data}.${createHmac("sha256", secret).update(data).digest("base64url")}`;
}

interface RsaKey {
  kid: string;
  privateKey: KeyObject;
  jwk: JsonWebKey & { kid: string };
}

function rsaKey(kid: string): RsaKey {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...(pair.publicKey.export({ format: "jwk" }) as JsonWebKey), kid, alg: "RS256" };
  return { kid, privateKey: pair.privateKey, jwk };
}

/** An Access application token as Access makes one (RS256, the team as issuer, the AUD tag). */
function accessToken(
  key: RsaKey,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): string {
  const data = `${b64({ alg: "RS256", kid: key.kid, typ: "JWT", ...header })}.${b64({
    aud: [AUD],
    email: "alice@acme.example",
    exp: SECONDS + 300,
    iat: SECONDS,
    nbf: SECONDS,
    iss: `https://${TEAM}`,
    type: "app",
    identity_nonce: "6ei69kawdKzMIAPF",
    sub: "7335d417-61da-459d-899c-0a01c76a2f94",
    country: "US",
    ...claims,
  })}`;
  return `${data}.${sign("sha256", Buffer.from(data), key.privateKey).toString("base64url")}`;
}

/** The team's certs endpoint: serves `keys`, counts fetches, refuses any other URL. */
function accessTeam(keys: RsaKey[]) {
  const served = { keys, fetches: 0 };
  vi.stubGlobal("fetch", async (url: string) => {
    expect(url).toBe(CERTS);
    served.fetches++;
    return new Response(JSON.stringify({ keys: served.keys.map((k) => k.jwk) }));
  });
  return served;
}

const cert = presentedCertificate;

function upgradeRequest(headers: Record<string, string> = {}, url = BROKER): Request {
  return new Request(url, {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", ...headers },
  });
}

const ALL: UpgradeLoginEnv = {
  UPGRADE_SESSION_SECRET: SESSION_SECRET,
  ACCESS_TEAM_DOMAIN: "acme",
  ACCESS_AUD: AUD,
  CLIENT_CERT_PRINCIPAL: "cn",
  UPGRADE_QUERY_TOKEN: "true",
  JWT_SECRET,
};

function logins(env: UpgradeLoginEnv = ALL): UpgradeLogins {
  const { settings, problems } = readUpgradeLoginSettings(env);
  expect(problems).toEqual([]);
  return new UpgradeLogins(settings);
}

/** The principal an outcome names (ownerOf), or what it is when none. */
function principal(outcome: UpgradeOutcome): string {
  return outcome.kind === "login" ? ownerOf(outcome.login.identity) : outcome.kind;
}

// ---- session cookies ----------------------------------------------------------

describe("session cookie (UPGRADE_SESSION_SECRET)", () => {
  const cookies = new SessionCookies(SESSION_SECRET);

  it("a cookie minted by the app's backend in Node's crypto names session:<name> until exp plus 30 s", async () => {
    const value = mintedByApp("alice", SECONDS + 60);
    expect(value).toBe(await cookies.mint("alice", SECONDS + 60));
    expect(await cookies.verify(value)).toEqual({
      ok: true,
      name: "alice",
      expiresAt: (SECONDS + 90) * 1000,
    });
    // Within the leeway after exp, still good; at its end, refused.
    expect((await cookies.verify(value, (SECONDS + 89) * 1000)).ok).toBe(true);
    expect(await cookies.verify(value, (SECONDS + 90) * 1000)).toEqual({
      ok: false,
      reason: "session cookie expired",
    });
  });

  it("a tampered name, exp or signature, or another secret's cookie, is refused on its signature", async () => {
    const value = mintedByApp("alice", SECONDS + 60);
    const [v, name, exp, sig] = value.split(".") as [string, string, string, string];
    const admin = Buffer.from("admin").toString("base64url");
    for (const forged of [
      `${v}.${admin}.${exp}.${sig}`,
      `${v}.${name}.${Number(exp) + 86_400}.${sig}`,
      `${v}.${name}.${exp}.${sig.slice(0, 20)}${sig[20] === "A" ? "B" : "A"}${sig.slice(21)}`,
      mintedByApp("alice", SECONDS + 60, "t".repeat(32)),
    ])
      expect(await cookies.verify(forged)).toEqual({ ok: false, reason: "session cookie signature" });
  });

  it("a cookie of another shape, a JWT signed with the same secret, or a longer one than 512 bytes is refused unchecked", async () => {
    const shape = { ok: false, reason: "session cookie is not v1.<name>.<exp>.<signature>" };
    expect(await cookies.verify("")).toEqual(shape);
    expect(await cookies.verify(hs256({ sub: "alice" }, SESSION_SECRET))).toEqual(shape);
    expect(await cookies.verify(mintedByApp("alice", SECONDS + 60).replace(/^v1/, "v2"))).toEqual(shape);
    expect(await cookies.verify(`v1.YQ.-5.${"A".repeat(43)}`)).toEqual(shape);
    // The last character of a 32-byte signature carries two padding bits, which must be 0:
    // one cookie, one spelling.
    const value = mintedByApp("alice", SECONDS + 60);
    const last = value.at(-1) as string;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const respelled = `${value.slice(0, -1)}${alphabet[alphabet.indexOf(last) + 1]}`;
    expect(Buffer.from(respelled.split(".")[3] as string, "base64url")).toEqual(
      Buffer.from(value.split(".")[3] as string, "base64url"),
    );
    expect(await cookies.verify(respelled)).toEqual(shape);
    // The longest name a principal may have makes a cookie within the bound; one byte more is refused.
    const longest = mintedByApp("n".repeat(256), SECONDS + 60);
    expect(longest.length).toBeLessThanOrEqual(MAX_SESSION_COOKIE_BYTES);
    expect((await cookies.verify(longest)).ok).toBe(true);
    const oversized = `${longest}${"A".repeat(MAX_SESSION_COOKIE_BYTES + 1 - longest.length)}`;
    expect(oversized.length).toBe(MAX_SESSION_COOKIE_BYTES + 1);
    expect(await cookies.verify(oversized)).toEqual({
      ok: false,
      reason: "session cookie longer than 512 bytes",
    });
  });

  it("a signed name that is no principal's (empty, control characters, not UTF-8, over 256 bytes) is refused", async () => {
    const signedBytes = (bytes: Buffer) => {
      const body = `v1.${bytes.toString("base64url")}.${SECONDS + 60}`;
      return `${body}.${createHmac("sha256", SESSION_SECRET).update(body).digest("base64url")}`;
    };
    expect(await cookies.verify(signedBytes(Buffer.from([0xc3, 0x28])))).toEqual({
      ok: false,
      reason: "session cookie name is not UTF-8",
    });
    expect(await cookies.verify(mintedByApp("a\u0000b", SECONDS + 60))).toMatchObject({ ok: false });
    expect(await cookies.verify(mintedByApp("n".repeat(257), SECONDS + 60))).toMatchObject({ ok: false });
  });

  it("cookie headers are read as RFC 6265 writes them", () => {
    expect(cookieValues('a=1; nimbus_session="v"; b=2', "nimbus_session")).toEqual(["v"]);
    expect(cookieValues("nimbus_session=x; nimbus_session=y", "nimbus_session")).toEqual(["x", "y"]);
    expect(cookieValues("xnimbus_session=1; nimbus_sessionx=2", "nimbus_session")).toEqual([]);
    expect(cookieValues(null, "nimbus_session")).toEqual([]);
  });
});

// ---- Cloudflare Access --------------------------------------------------------

describe("Cloudflare Access (ACCESS_TEAM_DOMAIN, ACCESS_AUD)", () => {
  const verifier = () => new AccessVerifier(TEAM, AUD);

  it("an Access token from the team's certs names access:<email>; a service token its common_name", async () => {
    const key = rsaKey("k1");
    const team = accessTeam([key]);
    const v = verifier();
    expect(await v.verify(accessToken(key))).toEqual({
      ok: true,
      name: "alice@acme.example",
      expiresAt: (SECONDS + 330) * 1000,
    });
    // A service token has no email: its Client ID names it.
    expect(
      await v.verify(accessToken(key, { email: undefined, common_name: "88bf3b6d.access", sub: "" })),
    ).toMatchObject({
      ok: true,
      name: "88bf3b6d.access",
    });
    expect(await v.verify(accessToken(key, { email: "", common_name: undefined }))).toEqual({
      ok: false,
      reason: "Access token has no email or common_name",
    });
    expect(team.fetches).toBe(1);
  });

  it("another application's AUD, another team's issuer, an expired token and a forged signature are refused", async () => {
    const key = rsaKey("k1");
    accessTeam([key]);
    const v = verifier();
    expect(await v.verify(accessToken(key, { aud: ["another-application"] }))).toEqual({
      ok: false,
      reason: "Access token: JWT audience",
    });
    expect(await v.verify(accessToken(key, { iss: "https://evil.cloudflareaccess.com" }))).toEqual({
      ok: false,
      reason: "Access token: JWT issuer",
    });
    expect(await v.verify(accessToken(key, { exp: SECONDS - 31 }))).toEqual({
      ok: false,
      reason: "Access token: JWT expired",
    });
    // Signed by a key of the attacker's under the team key's kid.
    expect(await v.verify(accessToken({ ...rsaKey("k1"), kid: "k1" }))).toEqual({
      ok: false,
      reason: "Access token: JWT signature",
    });
    // The email swapped in a real token's payload.
    const [h, , s] = accessToken(key).split(".");
    const payload = b64({
      aud: [AUD],
      email: "admin@acme.example",
      exp: SECONDS + 300,
      iss: `https://${TEAM}`,
    });
    expect(await v.verify(`${h}.${payload}.${s}`)).toEqual({
      ok: false,
      reason: "Access token: JWT signature",
    });
  });

  it("an HS256 token (the team's public key as its secret) or alg none is refused", async () => {
    const key = rsaKey("k1");
    accessTeam([key]);
    const v = verifier();
    expect(await v.verify(accessToken(key, {}, { alg: "HS256" }))).toEqual({
      ok: false,
      reason: "Access token: HS256 tokens are not accepted",
    });
    expect(await v.verify(accessToken(key, {}, { alg: "none" }))).toEqual({
      ok: false,
      reason: "Access token: JWT algorithm none not accepted",
    });
  });

  it("a key Access rotated in is fetched at once; an assertion longer than 8 KiB is refused unread", async () => {
    const old = rsaKey("2026-10");
    const team = accessTeam([old]);
    const v = verifier();
    expect((await v.verify(accessToken(old))).ok).toBe(true);
    vi.advanceTimersByTime(60_000);
    const next = rsaKey("2026-12");
    team.keys = [old, next];
    expect((await v.verify(accessToken(next))).ok).toBe(true);
    expect(team.fetches).toBe(2);
    const huge = accessToken(old, { pad: "x".repeat(MAX_ACCESS_TOKEN_BYTES) });
    expect(await v.verify(huge)).toEqual({ ok: false, reason: "Access token longer than 8192 bytes" });
    expect(team.fetches).toBe(2);
  });

  it("with ACCESS_JWKS the team's keys are those given, nothing is fetched, and issuer and audience still hold", async () => {
    const key = rsaKey("k1");
    const team = accessTeam([]);
    const v = new AccessVerifier(TEAM, AUD, JSON.stringify({ keys: [key.jwk] }));
    expect((await v.verify(accessToken(key))).ok).toBe(true);
    expect(await v.verify(accessToken(key, { aud: ["other"] }))).toMatchObject({ ok: false });
    expect(await v.verify(accessToken(key, { iss: "https://evil.cloudflareaccess.com" }))).toMatchObject({
      ok: false,
    });
    expect(team.fetches).toBe(0);
  });

  it("the team domain is read from what an operator may write, and nothing else", () => {
    for (const written of ["acme", "ACME.cloudflareaccess.com", "https://acme.cloudflareaccess.com/"])
      expect(accessTeamDomain(written)).toBe(TEAM);
    for (const written of ["", "evil.example/acme", "acme.cloudflareaccess.com.evil.example", "-acme", "a b"])
      expect(accessTeamDomain(written)).toBeUndefined();
  });
});

// ---- client certificates ------------------------------------------------------------

describe("client certificates (CLIENT_CERT_PRINCIPAL)", () => {
  it("a verified certificate names cert:<CN>, or its fingerprint, until its notAfter", () => {
    const end = CERT_NOT_AFTER;
    expect(certificateLogin(cert(), { principal: "cn" })).toEqual({
      ok: true,
      name: "device-17",
      expiresAt: end,
    });
    expect(certificateLogin(cert(), { principal: "fingerprint" })).toEqual({
      ok: true,
      name: "af363dc85bc942a892d3cee9796190fdb36d89cd588a4f1cb17c74a943439714",
      expiresAt: end,
    });
    expect(notAfter("Jan  2 03:04:05 2027 GMT")).toBe(Date.UTC(2027, 0, 2, 3, 4, 5));
    expect(notAfter("2027-01-02T03:04:05Z")).toBeUndefined();
  });

  it("no certificate is no login; one that did not verify, was revoked, expired or came from another issuer is refused", () => {
    expect(certificateLogin(undefined, { principal: "cn" })).toEqual({ ok: "none" });
    expect(certificateLogin(cert({ certPresented: "0", certVerified: "NONE" }), { principal: "cn" })).toEqual(
      {
        ok: "none",
      },
    );
    expect(
      certificateLogin(cert({ certVerified: "FAILED:self signed certificate" }), { principal: "cn" }),
    ).toEqual({
      ok: false,
      reason: "client certificate not verified (FAILED:self signed certificate)",
    });
    // Cloudflare reports a revoked certificate as verified.
    expect(certificateLogin(cert({ certRevoked: "1" }), { principal: "cn" })).toEqual({
      ok: false,
      reason: "client certificate revoked",
    });
    expect(certificateLogin(cert({ certNotAfter: "Dec  2 08:00:00 2026 GMT" }), { principal: "cn" })).toEqual(
      {
        ok: false,
        reason: "client certificate expired",
      },
    );
    const issuer = "CN=Acme Device CA,O=Acme,C=US";
    expect(certificateLogin(cert(), { principal: "cn", issuer }).ok).toBe(true);
    expect(
      certificateLogin(cert({ certIssuerDNRFC2253: "CN=Other CA,O=Acme,C=US" }), { principal: "cn", issuer }),
    ).toEqual({
      ok: false,
      reason: "client certificate from another issuer (CLIENT_CERT_ISSUER)",
    });
  });

  it("a subject with two CNs, none, a hex value, a bad fingerprint or an oversized DN names no one", () => {
    const cn = (dn: string) => certificateLogin(cert({ certSubjectDNRFC2253: dn }), { principal: "cn" });
    expect(cn("CN=alice+CN=admin,O=Acme")).toEqual({
      ok: false,
      reason: "client certificate subject has 2 CNs, not one",
    });
    expect(cn("CN=alice,CN=admin")).toMatchObject({ ok: false });
    expect(cn("O=Acme,C=US")).toEqual({ ok: false, reason: "client certificate subject has 0 CNs, not one" });
    expect(cn("CN=#0405616c696365")).toEqual({
      ok: false,
      reason: "client certificate subject is not an RFC 2253 DN",
    });
    expect(cn(`CN=${"a".repeat(1100)}`)).toEqual({
      ok: false,
      reason: "client certificate subject longer than 1024 bytes",
    });
    expect(cn("CN=a\\00b")).toMatchObject({
      ok: false,
      reason: "client certificate: a user name has no control characters",
    });
    expect(certificateLogin(cert({ certFingerprintSHA256: "af36" }), { principal: "fingerprint" })).toEqual({
      ok: false,
      reason: "client certificate has no SHA-256 fingerprint",
    });
  });

  it("RFC 2253 escapes are read: an escaped comma or plus stays in the CN, hex gives UTF-8", () => {
    expect(parseDn("CN=Doe\\, John,O=Acme")).toEqual([
      ["CN", "Doe, John"],
      ["O", "Acme"],
    ]);
    expect(parseDn("cn=a\\+b + OU=x;C=US")).toEqual([
      ["CN", "a+b"],
      ["OU", "x"],
      ["C", "US"],
    ]);
    expect(parseDn("CN=J\\C3\\BCrgen,2.5.4.10=Acme")).toEqual([
      ["CN", "Jürgen"],
      ["2.5.4.10", "Acme"],
    ]);
    expect(parseDn("CN=trail\\ ")).toEqual([["CN", "trail "]]);
    expect(parseDn("CN=bad\\C3")).toBeUndefined();
    expect(parseDn("CN=x\\q")).toBeUndefined();
    expect(parseDn("novalue")).toBeUndefined();
  });
});

// ---- the upgrade request ------------------------------------------------------------

describe("which login an upgrade request makes", () => {
  it("a query token first, then a certificate, then Access, then the session cookie", async () => {
    const key = rsaKey("k1");
    accessTeam([key]);
    const l = logins();
    const session = `nimbus_session=${mintedByApp("carol", SECONDS + 60)}`;
    const access = { "Cf-Access-Jwt-Assertion": accessToken(key) };
    const tls = { tlsClientAuth: cert() };
    const query = `${BROKER}?token=${hs256({ sub: "dave" })}`;
    expect(principal(await l.identify(upgradeRequest({ Cookie: session, ...access }, query), tls))).toBe(
      "jwt:dave",
    );
    expect(principal(await l.identify(upgradeRequest({ Cookie: session, ...access }), tls))).toBe(
      "cert:device-17",
    );
    expect(principal(await l.identify(upgradeRequest({ Cookie: session, ...access }), undefined))).toBe(
      "access:alice@acme.example",
    );
    expect(principal(await l.identify(upgradeRequest({ Cookie: session }), undefined))).toBe("session:carol");
    expect(principal(await l.identify(upgradeRequest(), undefined))).toBe("none");
  });

  it("a query token that does not verify refuses the upgrade; an ambient credential that does not is passed over", async () => {
    const l = logins();
    const bad = `${BROKER}?token=${hs256({ sub: "dave" }, "wrong-secret")}`;
    expect(await l.identify(upgradeRequest({}, bad), undefined)).toEqual({
      kind: "refused",
      reason: "query token: JWT signature",
    });
    expect(await l.identify(upgradeRequest({}, `${BROKER}?token=a&token=b`), undefined)).toEqual({
      kind: "refused",
      reason: "more than one token in the query",
    });
    expect(await l.identify(upgradeRequest({}, `${BROKER}?token=${"a".repeat(8193)}`), undefined)).toEqual({
      kind: "refused",
      reason: "query token longer than 8192 bytes",
    });
    // A revoked certificate and an expired cookie: both passed over, the request has no login.
    const stale = `nimbus_session=${mintedByApp("carol", SECONDS - 31)}`;
    const outcome = await l.identify(upgradeRequest({ Cookie: stale }), {
      tlsClientAuth: cert({ certRevoked: "1" }),
    });
    expect(outcome).toEqual({
      kind: "none",
      passedOver: ["client certificate revoked", "session cookie expired"],
    });
    // A revoked certificate passed over, a good cookie taken.
    const fresh = `nimbus_session=${mintedByApp("carol", SECONDS + 60)}`;
    const next = await l.identify(upgradeRequest({ Cookie: fresh }), {
      tlsClientAuth: cert({ certRevoked: "1" }),
    });
    expect(principal(next)).toBe("session:carol");
  });

  it("two session cookies of the name (one tossed in by a sibling site) log no one in", async () => {
    const l = logins();
    const mine = mintedByApp("carol", SECONDS + 60);
    const tossed = mintedByApp("mallory", SECONDS + 60);
    expect(
      await l.identify(
        upgradeRequest({ Cookie: `nimbus_session=${tossed}; nimbus_session=${mine}` }),
        undefined,
      ),
    ).toEqual({
      kind: "none",
      passedOver: ["several nimbus_session cookies"],
    });
  });

  it("a page of another site gets no login from the browser's cookies, Access assertion or certificate (CSWSH)", async () => {
    const key = rsaKey("k1");
    accessTeam([key]);
    const l = logins({ ...ALL, ALLOWED_ORIGINS: "https://app.acme.example" });
    const ambient = {
      Cookie: `nimbus_session=${mintedByApp("carol", SECONDS + 60)}`,
      "Cf-Access-Jwt-Assertion": accessToken(key),
    };
    const tls = { tlsClientAuth: cert() };
    const from = (origin: string | undefined) =>
      l.identify(upgradeRequest(origin === undefined ? ambient : { ...ambient, Origin: origin }), tls);
    expect(await from("https://evil.example")).toEqual({ kind: "none", passedOver: [] });
    expect(await from("https://mqtt.acme.example.evil.example")).toEqual({ kind: "none", passedOver: [] });
    // The broker's own pages, an allowed origin, and no Origin at all (not a browser).
    expect(principal(await from("https://mqtt.acme.example"))).toBe("cert:device-17");
    expect(principal(await from("https://app.acme.example"))).toBe("cert:device-17");
    expect(principal(await from(undefined))).toBe("cert:device-17");
    // A token in the URL is not ambient: a page must hold it to send it.
    const query = `${BROKER}?token=${hs256({ sub: "dave" })}`;
    const chosen = await l.identify(upgradeRequest({ Origin: "https://evil.example" }, query), undefined);
    expect(principal(chosen)).toBe("jwt:dave");
  });

  it("a way in that is not configured is not read", async () => {
    const key = rsaKey("k1");
    const team = accessTeam([key]);
    const l = logins({ UPGRADE_SESSION_SECRET: SESSION_SECRET });
    const request = upgradeRequest(
      { "Cf-Access-Jwt-Assertion": accessToken(key) },
      `${BROKER}?token=${hs256({ sub: "d" })}`,
    );
    expect(await l.identify(request, { tlsClientAuth: cert() })).toEqual({ kind: "none", passedOver: [] });
    expect(team.fetches).toBe(0);
    expect(logins({}).enabled).toBe(false);
  });

  it("a query token keeps its client_id binding and mqtt rules; one too large for the header refuses the upgrade", async () => {
    const l = logins();
    const bound = await l.identify(
      upgradeRequest(
        {},
        `${BROKER}?token=${hs256({ sub: "dave", client_id: "dave-phone", mqtt: { publish: ["d/#"] } })}`,
      ),
      undefined,
    );
    expect(bound).toMatchObject({
      kind: "login",
      login: {
        identity: { username: "dave", via: "jwt", rules: { publish: ["d/#"], subscribe: [] } },
        clientId: "dave-phone",
      },
    });
    // A subject no principal may have (control characters, past 256 bytes): refused with why.
    for (const sub of ["a\u0001b", "n".repeat(257)])
      expect(await l.identify(upgradeRequest({}, `${BROKER}?token=${hs256({ sub })}`), undefined)).toEqual({
        kind: "refused",
        reason: "login's username is not one a principal may have",
      });
    const many = Array.from({ length: 100 }, (_, i) => `devices/${i}/#`);
    const large = await l.identify(
      upgradeRequest({}, `${BROKER}?token=${hs256({ sub: "dave", mqtt: { subscribe: many } })}`),
      undefined,
    );
    expect(large).toEqual({
      kind: "refused",
      reason: "login too large for an upgrade (send the token in CONNECT instead)",
    });
  });
});

// ---- the header to the Gateway ----------------------------------------------------------

describe("the login's header (x-nimbus-upgrade-identity)", () => {
  const login: UpgradeIdentity = {
    identity: { username: "Jürgen 界", via: "certificate", expiresAt: NOW + 1000 },
  };

  it("is ASCII JSON that reads back as it was written", () => {
    const text = encodeUpgradeIdentity(login) as string;
    expect(text).toMatch(/^[\x20-\x7e]+$/);
    const headers = new Headers({ [UPGRADE_IDENTITY_HEADER]: text });
    expect(upgradeIdentityOf(headers)).toEqual(login);
    expect(upgradeIdentityOf(new Headers())).toBeUndefined();
  });

  it("is read as none when it is not what the Worker writes: a password or anonymous login, stray keys, bad names, too long", () => {
    const read = (value: unknown) =>
      upgradeIdentityOf(
        new Headers({ [UPGRADE_IDENTITY_HEADER]: typeof value === "string" ? value : JSON.stringify(value) }),
      );
    expect(read({ identity: { username: "root", via: "password" } })).toBeUndefined();
    expect(read({ identity: { username: "root", via: "auth-method" } })).toBeUndefined();
    expect(read({ identity: { via: "session" } })).toBeUndefined();
    expect(read({ identity: { username: "", via: "session" } })).toBeUndefined();
    expect(read({ identity: { username: "a", via: "session", admin: true } })).toBeUndefined();
    expect(read({ identity: { username: "a", via: "session" }, extra: 1 })).toBeUndefined();
    expect(
      read({ identity: { username: "a", via: "session", rules: { publish: ["#", 3] } } }),
    ).toBeUndefined();
    expect(read({ identity: { username: "a", via: "session", expiresAt: "never" } })).toBeUndefined();
    expect(read("{not json")).toBeUndefined();
    expect(
      read({ identity: { username: "a".repeat(MAX_UPGRADE_IDENTITY_BYTES), via: "session" } }),
    ).toBeUndefined();
  });

  it("at its largest, kept in the socket's attachment until CONNECT, stays within 2,048 bytes", () => {
    // Every string two bytes a character when stored (one character past Latin-1 in each).
    const wide = (n: number, c: string) => `界${c.repeat(n - 1)}`;
    const build = (n: number): UpgradeIdentity => ({
      identity: {
        username: wide(120, "u"),
        via: "certificate",
        expiresAt: Number.MAX_SAFE_INTEGER,
        rules: { publish: [wide(n, "p")], subscribe: [wide(40, "s")] },
      },
      clientId: wide(100, "c"),
    });
    let n = 1;
    while (encodeUpgradeIdentity(build(n + 1)) !== undefined) n++;
    const largest = build(n);
    expect((encodeUpgradeIdentity(largest) as string).length).toBeGreaterThan(MAX_UPGRADE_IDENTITY_BYTES - 6);
    const att: AwaitingConnect & { upgrade: UpgradeIdentity } = {
      phase: "awaiting-connect",
      openedAt: Date.now(),
      address: "界".repeat(64),
      upgrade: largest,
    };
    expect(serialize(att).length).toBeLessThanOrEqual(2048);
  });
});

// ---- at CONNECT ------------------------------------------------------------------

describe("what an upgrade's login counts for at CONNECT (identityAtConnect)", () => {
  const carol: UpgradeIdentity = { identity: { username: "carol", via: "session", expiresAt: NOW + 60_000 } };

  it("CONNECT without a password is the login; a user name may repeat it, not rename it", () => {
    expect(identityAtConnect(carol, { clientId: "c" })).toEqual({ ok: true, identity: carol.identity });
    expect(identityAtConnect(carol, { clientId: "c", username: "carol" })).toEqual({
      ok: true,
      identity: carol.identity,
    });
    expect(identityAtConnect(carol, { clientId: "c", username: "admin" })).toEqual({
      ok: false,
      code: "bad-credentials",
      reason: "user name differs from the upgrade's identity",
      cost: "cheap",
    });
  });

  it("no login, or a password in CONNECT, leaves the decision to CONNECT's credentials", () => {
    expect(identityAtConnect(undefined, { clientId: "c" })).toBeUndefined();
    expect(
      identityAtConnect(carol, { clientId: "c", username: "bob", password: utf8("pw") }),
    ).toBeUndefined();
  });

  it("a login bound to another client id, or one that ended while the socket waited, is refused", () => {
    const bound: UpgradeIdentity = { ...carol, clientId: "carol-phone" };
    expect(identityAtConnect(bound, { clientId: "carol-phone" })?.ok).toBe(true);
    expect(identityAtConnect(bound, { clientId: "victim" })).toEqual({
      ok: false,
      code: "not-authorized",
      reason: "the upgrade's login is for another client id",
      cost: "cheap",
    });
    expect(identityAtConnect(carol, { clientId: "c" }, NOW + 60_000)).toEqual({
      ok: false,
      code: "bad-credentials",
      reason: "the upgrade's login has expired",
      cost: "cheap",
    });
  });

  it("through the authenticator: anonymous access off, a login from the upgrade gets in; a password still decides", async () => {
    const auth = new ConnectAuthenticator({ allowAnonymous: false, jwt: { secret: JWT_SECRET } });
    expect(await auth.authenticate({ clientId: "c" })).toMatchObject({ ok: false, code: "not-authorized" });
    expect(await auth.authenticate({ clientId: "c", upgrade: carol })).toEqual({
      ok: true,
      identity: carol.identity,
    });
    const token = utf8(hs256({ sub: "dave" }));
    expect(await auth.authenticate({ clientId: "c", password: token, upgrade: carol })).toMatchObject({
      ok: true,
      identity: { username: "dave", via: "jwt" },
    });
  });

  it("each way in is a namespace of its own, and none of the upgrade's claims a session an earlier release stored", () => {
    const owners = (["session", "access", "certificate", "password", "jwt"] as const).map((via) =>
      ownerOf({ username: "alice", via }),
    );
    expect(owners).toEqual(["session:alice", "access:alice", "cert:alice", "user:alice", "jwt:alice"]);
    for (const owner of owners.slice(0, 3)) expect(legacyOwnerOf(owner)).toBe(owner);
    expect(legacyOwnerOf("jwt:alice")).toBe("user:alice");
  });
});

// ---- settings ---------------------------------------------------------------

describe("settings", () => {
  it.each([
    [{ UPGRADE_SESSION_SECRET: "short" }, /UPGRADE_SESSION_SECRET has fewer than 32 bytes/],
    [{ UPGRADE_SESSION_SECRET: SESSION_SECRET, UPGRADE_SESSION_COOKIE: "a b" }, /is not a cookie name/],
    [{ ACCESS_TEAM_DOMAIN: "acme" }, /ACCESS_TEAM_DOMAIN and ACCESS_AUD go together/],
    [{ ACCESS_AUD: AUD }, /ACCESS_TEAM_DOMAIN and ACCESS_AUD go together/],
    [{ ACCESS_TEAM_DOMAIN: "evil.example/x", ACCESS_AUD: AUD }, /is not <team>.cloudflareaccess.com/],
    [{ ACCESS_TEAM_DOMAIN: "acme", ACCESS_AUD: AUD, ACCESS_JWKS: "{}" }, /ACCESS_JWKS is not a JWKS/],
    [{ ACCESS_JWKS: '{"keys":[]}' }, /ACCESS_JWKS needs ACCESS_TEAM_DOMAIN and ACCESS_AUD/],
    [{ CLIENT_CERT_PRINCIPAL: "subject" }, /neither cn nor fingerprint/],
    [{ CLIENT_CERT_ISSUER: "CN=CA" }, /CLIENT_CERT_ISSUER needs CLIENT_CERT_PRINCIPAL/],
    [{ UPGRADE_QUERY_TOKEN: "true" }, /needs a JWT key/],
    [{ UPGRADE_QUERY_TOKEN: "yes", JWT_SECRET }, /neither true nor false/],
  ] satisfies Array<[UpgradeLoginEnv, RegExp]>)("%o is refused by readConfig", (env, problem) => {
    expect(() => readConfig(env)).toThrow(ConfigError);
    expect(() => readConfig(env)).toThrow(problem);
  });

  it("every way in together is a configuration readConfig takes", () => {
    expect(() => readConfig(ALL)).not.toThrow();
  });
});
