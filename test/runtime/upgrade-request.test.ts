/**
 * Inside workerd: the Worker's side of an upgrade (worker/upgrade.ts). What the
 * Gateway is told comes from the Worker only: every `x-nimbus-*` header a client
 * sends is removed, the client's address is Cloudflare's CF-Connecting-IP, and the
 * login header is the Worker's, made from a credential it verified (a client
 * certificate from `request.cf`, as Cloudflare's mTLS sets it, among them).
 */
import { runInDurableObject, SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Identity } from "../../broker/auth/authenticator.ts";
import type { PresentedCertificate } from "../../broker/auth/client-cert.ts";
import { SessionCookies } from "../../broker/auth/session-cookie.ts";
import {
  UPGRADE_IDENTITY_HEADER,
  type UpgradeIdentity,
  upgradeIdentityOf,
} from "../../broker/auth/upgrade-identity.ts";
import { readUpgradeLoginSettings, UpgradeLogins } from "../../broker/auth/upgrade-logins.ts";
import { readConfig } from "../../broker/config.ts";
import type { Env } from "../../worker/env.ts";
import { type UpgradeDecision, upgradeDecision } from "../../worker/upgrade.ts";
import { CERT_NOT_AFTER, presentedCertificate } from "../support/certificates.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
const URL_ = "https://mqtt.acme.example/mqtt";
const SESSION_SECRET = "r".repeat(32);
const JWT_SECRET = "runtime-query-secret";

/** What a hostile client adds to its upgrade: the headers only the Worker may set. */
const FORGED = {
  "x-nimbus-client-address": "6.6.6.6",
  "x-nimbus-gateway": "gateway-7",
  "x-nimbus-subprotocol": "mqttv3.1",
  [UPGRADE_IDENTITY_HEADER]: JSON.stringify({ identity: { username: "admin", via: "session" } }),
  "X-Nimbus-Anything": "1",
};

const verifiedCert = presentedCertificate();

function logins(): UpgradeLogins {
  const { settings, problems } = readUpgradeLoginSettings({
    UPGRADE_SESSION_SECRET: SESSION_SECRET,
    CLIENT_CERT_PRINCIPAL: "cn",
    UPGRADE_QUERY_TOKEN: "true",
    JWT_SECRET,
  });
  expect(problems).toEqual([]);
  return new UpgradeLogins(settings);
}

/** An upgrade as Cloudflare hands it to the Worker: `cf` set by the edge (here by RequestInit, as workerd allows). */
function upgrade(headers: Record<string, string>, cf?: { tlsClientAuth: PresentedCertificate }, url = URL_) {
  const init: RequestInit = {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", ...headers },
  };
  if (cf !== undefined) Object.assign(init, { cf });
  return new Request(url, init);
}

async function decide(request: Request): Promise<UpgradeDecision> {
  // As worker/index.ts calls it: the request's own cf object.
  const cf = request.cf as { tlsClientAuth?: PresentedCertificate } | undefined;
  return upgradeDecision(request, readConfig({}), logins(), cf);
}

function forwarded(decision: UpgradeDecision): Request {
  if (decision.kind !== "forward") throw new Error(`refused: ${decision.kind}`);
  return decision.request;
}

async function hs256(claims: Record<string, unknown>): Promise<string> {
  const b64 = (x: unknown) =>
    btoa(JSON.stringify(x)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const data = `${b64({ alg: "HS256" })}.${b64({ exp: Math.floor(Date.now() / 1000) + 300, ...claims })}`;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(JWT_SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
  return `${data}.${btoa(String.fromCharCode(...sig))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "")}`;
}

describe("what the Gateway is told", () => {
  it("no x-nimbus-* header of the client's reaches it: the address is CF-Connecting-IP, the login the Worker's", async () => {
    const request = forwarded(await decide(upgrade({ ...FORGED, "CF-Connecting-IP": "198.51.100.23" })));
    const own = [...request.headers.keys()].filter((k) => k.startsWith("x-nimbus-"));
    expect(own.sort()).toEqual(["x-nimbus-client-address", "x-nimbus-gateway", "x-nimbus-subprotocol"]);
    expect(request.headers.get("x-nimbus-client-address")).toBe("198.51.100.23");
    expect(request.headers.get("x-nimbus-gateway")).toBe("gateway-0");
    expect(request.headers.get("x-nimbus-subprotocol")).toBe("mqtt");
    expect(upgradeIdentityOf(request.headers)).toBeUndefined();
    // Without CF-Connecting-IP (wrangler dev), no address at all rather than the client's.
    const local = forwarded(await decide(upgrade(FORGED)));
    expect(local.headers.get("x-nimbus-client-address")).toBe("");
  });

  it("a certificate Cloudflare verified becomes the login header; the credentials themselves go no further", async () => {
    const cookie = `nimbus_session=${await new SessionCookies(SESSION_SECRET).mint("carol", Math.floor(Date.now() / 1000) + 60)}`;
    const request = forwarded(
      await decide(
        upgrade(
          { ...FORGED, Cookie: cookie, "Cf-Access-Jwt-Assertion": "a.b.c", Authorization: "Bearer x" },
          { tlsClientAuth: verifiedCert },
        ),
      ),
    );
    const login = upgradeIdentityOf(request.headers) as UpgradeIdentity;
    const expected: Identity = {
      username: "device-17",
      via: "certificate",
      expiresAt: CERT_NOT_AFTER,
    };
    expect(login).toEqual({ identity: expected });
    for (const h of ["cookie", "cf-access-jwt-assertion", "authorization"])
      expect(request.headers.get(h)).toBeNull();
    expect(request.headers.get("Upgrade")).toBe("websocket");
  });

  it("a certificate that did not verify gives no login; the session cookie beside it does", async () => {
    const failed = { ...verifiedCert, certVerified: "FAILED:unable to get local issuer certificate" };
    expect(
      upgradeIdentityOf(forwarded(await decide(upgrade({}, { tlsClientAuth: failed }))).headers),
    ).toBeUndefined();
    const cookie = `nimbus_session=${await new SessionCookies(SESSION_SECRET).mint("carol", Math.floor(Date.now() / 1000) + 60)}`;
    const request = forwarded(await decide(upgrade({ Cookie: cookie }, { tlsClientAuth: failed })));
    expect(upgradeIdentityOf(request.headers)?.identity).toMatchObject({ username: "carol", via: "session" });
    // From a page of another site, the same cookie and certificate name no one.
    const hijack = forwarded(
      await decide(
        upgrade({ Cookie: cookie, Origin: "https://evil.example" }, { tlsClientAuth: verifiedCert }),
      ),
    );
    expect(upgradeIdentityOf(hijack.headers)).toBeUndefined();
  });

  it("a query token is verified and taken out of the URL; one that does not verify is answered 401", async () => {
    const token = await hs256({ sub: "dave" });
    const request = forwarded(await decide(upgrade({}, undefined, `${URL_}?token=${token}&x=1`)));
    expect(upgradeIdentityOf(request.headers)?.identity).toMatchObject({ username: "dave", via: "jwt" });
    expect(request.url).toBe(`${URL_}?x=1`);
    const flipped = `${token.slice(0, -10)}${token.at(-10) === "A" ? "B" : "A"}${token.slice(-9)}`;
    const refused = await decide(upgrade({}, undefined, `${URL_}?token=${flipped}`));
    if (refused.kind !== "refuse") throw new Error("forwarded");
    expect(refused.response.status).toBe(401);
    expect(await refused.response.text()).toBe("query token: JWT signature\n");
  });
});

describe("through the Worker to the Gateway", () => {
  it("a socket opened with forged x-nimbus headers is recorded with Cloudflare's address, not the client's", async () => {
    const res = await SELF.fetch("http://nimbus.test/mqtt", {
      headers: {
        Upgrade: "websocket",
        "Sec-WebSocket-Protocol": "mqtt",
        "CF-Connecting-IP": "198.51.100.77",
        ...FORGED,
      },
    });
    expect(res.status).toBe(101);
    res.webSocket?.accept();
    const addresses = await runInDurableObject(gateway(), (_instance, state) =>
      state.getWebSockets().map((ws) => (ws.deserializeAttachment() as { address?: string }).address),
    );
    expect(addresses).toContain("198.51.100.77");
    expect(addresses).not.toContain("6.6.6.6");
    res.webSocket?.close(1000);
  });
});
