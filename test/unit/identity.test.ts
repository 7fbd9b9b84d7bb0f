/**
 * Identity in Node: principals from every way in, client id rules, ACL
 * substitution of identities that could be patterns (the failed-login throttle: throttle.test.ts),
 * and JWT/JWKS hardening (DESIGN.md, Identity).
 */
import { createHmac } from "node:crypto";
import { serialize } from "node:v8";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Acl } from "../../broker/acl.ts";
import { ConnectAuthenticator, ownerOf } from "../../broker/auth/authenticator.ts";
import { deviceKey, HmacChallenge } from "../../broker/auth/hmac-challenge.ts";
import { JwtVerifier } from "../../broker/auth/jwt.ts";
import { MAX_AUTH_STATE } from "../../broker/auth/method.ts";
import { passwordEntry } from "../../broker/auth/passwords.ts";
import { CLIENT_ID_LENGTH_LIMIT, clientIdAllowed, clientIdShapeProblem } from "../../broker/client-ids.ts";
import { ConfigError, readConfig } from "../../broker/config.ts";
import type { Connected } from "../../durable-objects/gateway/connection.ts";
import { encode } from "../../mqtt/index.ts";
import { apiProperties } from "../../worker/publish-properties.ts";

const SECRET = "unit-secret";
const utf8 = (s: string) => new TextEncoder().encode(s);

function token(claims: Record<string, unknown>, withExp = true): string {
  const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const exp = withExp ? { exp: Math.floor(Date.now() / 1000) + 60 } : {};
  const data = `${b64({ alg: "HS256" })}.${b64({ ...exp, ...claims })}`;
  return `${data}.${createHmac("sha256", SECRET).update(data).digest("base64url")}`;
}

describe("principals", () => {
  const tokens = new ConnectAuthenticator({ allowAnonymous: false, jwt: { secret: SECRET } });

  it("a token's principal is its subject; a differing user name is refused, an equal one accepted", async () => {
    expect(await tokens.authenticate({ clientId: "c", password: utf8(token({ sub: "bob" })) })).toMatchObject(
      {
        ok: true,
        identity: { username: "bob", via: "jwt" },
      },
    );
    const renamed = await tokens.authenticate({
      clientId: "c",
      username: "admin",
      password: utf8(token({ sub: "bob" })),
    });
    expect(renamed).toMatchObject({ ok: false, code: "bad-credentials" });
    const same = await tokens.authenticate({
      clientId: "c",
      username: "bob",
      password: utf8(token({ sub: "bob" })),
    });
    expect(same.ok).toBe(true);
  });

  it("a token without its identity claim, or with a malformed mqtt claim, is refused", async () => {
    expect(await tokens.authenticate({ clientId: "c", password: utf8(token({})) })).toMatchObject({
      ok: false,
    });
    expect(
      await tokens.authenticate({
        clientId: "c",
        password: utf8(token({ sub: "x", mqtt: { publish: [1] } })),
      }),
    ).toMatchObject({ ok: false });
    // Patterns are checked as the ACL setting's: a string is not a list, "a/#/b" no filter.
    for (const mqtt of [{ publish: "x/#" }, { subscribe: ["a/#/b"] }]) {
      expect(
        await tokens.authenticate({ clientId: "c", password: utf8(token({ sub: "x", mqtt })) }),
      ).toMatchObject({ ok: false });
    }
    const custom = new ConnectAuthenticator({
      allowAnonymous: false,
      jwt: { secret: SECRET },
      identityClaim: "device",
    });
    expect(
      await custom.authenticate({ clientId: "c", password: utf8(token({ device: "d1" })) }),
    ).toMatchObject({
      ok: true,
      identity: { username: "d1" },
    });
  });

  it("a token without exp, or with exp of another type, is refused", async () => {
    const verifier = new JwtVerifier({ secret: SECRET });
    expect(await verifier.verify(token({ sub: "a" }, false))).toMatchObject({ ok: false });
    expect(await verifier.verify(token({ sub: "a", exp: "9999999999" }, false))).toMatchObject({ ok: false });
    expect(await verifier.verify(token({ sub: "a", nbf: "0" }))).toMatchObject({ ok: false });
    expect(await verifier.verify(token({ sub: "a" }))).toMatchObject({ ok: true });
  });

  it("anonymous access with no credential store lets a named client in, named; a store checks every name", async () => {
    const open = new ConnectAuthenticator({ allowAnonymous: true, jwt: {} });
    expect(await open.authenticate({ clientId: "c", username: "dev" })).toEqual({
      ok: true,
      identity: { username: "dev", via: "anonymous" },
    });
    expect(await open.authenticate({ clientId: "c" })).toEqual({ ok: true, identity: { via: "anonymous" } });
    const stored = new ConnectAuthenticator({
      allowAnonymous: true,
      passwords: await passwordEntry("alice", "pw"),
      jwt: {},
    });
    // With a store, a name is a claim to be proved: never taken on trust.
    expect(await stored.authenticate({ clientId: "c", username: "alice" })).toMatchObject({ ok: false });
    expect(
      await stored.authenticate({ clientId: "c", username: "alice", password: utf8("no") }),
    ).toMatchObject({
      ok: false,
      code: "bad-credentials",
    });
    expect(await stored.authenticate({ clientId: "c" })).toEqual({
      ok: true,
      identity: { via: "anonymous" },
    });
  });

  it("the owner key tells a user named anonymous from the anonymous principal", () => {
    expect(ownerOf({ via: "anonymous" })).not.toBe(ownerOf({ username: "anonymous", via: "password" }));
    expect(ownerOf({ username: "a", via: "password" })).not.toBe(ownerOf({ username: "a", via: "jwt" }));
  });

  it("NIMBUS-HMAC-SHA256 verifies the name with the device's derived key, and keeps small state", async () => {
    const method = new HmacChallenge(SECRET);
    const ctx = { clientId: "c1", username: "dev-a" };
    const { step, state } = await method.start(ctx, undefined);
    expect(state.length).toBeLessThanOrEqual(MAX_AUTH_STATE);
    const challenge = (step as { data: Uint8Array }).data;
    const answer = (name: string) =>
      new Uint8Array(
        createHmac("sha256", Buffer.from(createHmac("sha256", SECRET).update(name).digest()))
          .update(challenge)
          .update("c1")
          .digest(),
      );
    expect(Buffer.from(await deviceKey(SECRET, "dev-a"))).toEqual(
      createHmac("sha256", SECRET).update("dev-a").digest(),
    );
    expect((await method.continue(ctx, state, answer("dev-a"))).step).toEqual({
      kind: "success",
      identity: "dev-a",
    });
    expect((await method.continue(ctx, state, answer("dev-b"))).step.kind).toBe("failure");
  });
});

describe("identities that could be patterns stand in no ACL pattern (Mosquitto's rule)", () => {
  const acl = new Acl([{ user: "*", publish: ["devices/%c/#", "users/%u/#"], subscribe: ["devices/%c/#"] }]);

  it.each(["#", "+", "a/b", "x+", ""])("client id %j grants nothing through %%c", (clientId) => {
    expect(acl.canSubscribe({ clientId }, "devices/#")).toBe(false);
    expect(acl.canPublish({ clientId }, "devices/other/x")).toBe(false);
    expect(acl.canPublish({ clientId }, `devices/${clientId}/x`)).toBe(false);
  });

  it("nor does such a user name through %u; a plain one does", () => {
    expect(acl.canPublish({ clientId: "c", username: "#" }, "users/bob/x")).toBe(false);
    expect(acl.canPublish({ clientId: "c", username: "a/b" }, "users/a/b/x")).toBe(false);
    expect(acl.canPublish({ clientId: "c", username: "bob" }, "users/bob/x")).toBe(true);
    expect(acl.canPublish({ clientId: "dev1" }, "devices/dev1/x")).toBe(true);
  });
});

describe("client ids", () => {
  it("are refused past the length limit (UTF-8 bytes) or with control characters", () => {
    expect(clientIdShapeProblem("a".repeat(256), 256)).toBeNull();
    expect(clientIdShapeProblem("a".repeat(257), 256)?.code).toBe("invalid");
    expect(clientIdShapeProblem("é".repeat(129), 256)?.code).toBe("invalid");
    expect(clientIdShapeProblem("a\u0001b", 256)?.code).toBe("invalid");
    expect(clientIdShapeProblem("a\u0085b", 256)?.code).toBe("invalid");
    // A bridge's origin: no client may take it.
    expect(clientIdShapeProblem("bridge:plant", 256)?.code).toBe("not-allowed");
    expect(clientIdShapeProblem("bridge:", 256)?.code).toBe("not-allowed");
    expect(clientIdShapeProblem("my-bridge:plant", 256)).toBeNull();
  });

  it("match CLIENT_ID_PATTERN with %u for the principal and * for any run", () => {
    const alice = { username: "alice", via: "password" } as const;
    expect(clientIdAllowed(undefined, "anything", alice)).toBe(true);
    expect(clientIdAllowed("%u-*", "alice-phone", alice)).toBe(true);
    expect(clientIdAllowed("%u-*", "alice-", alice)).toBe(true);
    expect(clientIdAllowed("%u-*", "bob-phone", alice)).toBe(false);
    expect(clientIdAllowed("%u-*", "xalice-phone", alice)).toBe(false);
    expect(clientIdAllowed("%u", "alice", alice)).toBe(true);
    expect(clientIdAllowed("%u", "alice2", alice)).toBe(false);
    expect(clientIdAllowed("dev-*-%u", "dev-1-alice", alice)).toBe(true);
    expect(clientIdAllowed("*-*", "ab", alice)).toBe(false);
    expect(clientIdAllowed("%u-*", "anonymous-1", { via: "anonymous" })).toBe(false);
  });

  it("at the largest allowed length still fit the 2,048-byte attachment with every field at its largest", () => {
    const att: Required<Connected> = {
      phase: "connected",
      openedAt: Date.now(),
      // two-byte characters: a string serializes at two bytes a character
      clientId: "é".repeat(CLIENT_ID_LENGTH_LIMIT / 2),
      connId: crypto.randomUUID(),
      version: 5,
      keepAlive: 65535,
      persistent: true,
      expiry: 0xffffffff,
      lastSeen: Date.now(),
      address: "界".repeat(64),
      loginExpires: 8.64e15,
      receiveMaximum: 65535,
      maximumPacketSize: 0xffffffff,
      topicAliasMaximum: 65535,
      noProblemInfo: true,
      auth: { method: "NIMBUS-HMAC-SHA256", state: "x".repeat(MAX_AUTH_STATE) },
    };
    expect(serialize(att).length).toBeLessThanOrEqual(2048);
  });
});

describe("JWKS fetching", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("a failing JWKS URL is fetched once per retry interval, not once per CONNECT; concurrent CONNECTs share a fetch", async () => {
    let calls = 0;
    vi.stubGlobal("fetch", async () => {
      calls++;
      return new Response("down", { status: 503 });
    });
    const verifier = new JwtVerifier({ jwksUrl: "https://issuer.invalid/jwks", issuer: "i", audience: "a" });
    const rs = `${Buffer.from('{"alg":"RS256"}').toString("base64url")}.${Buffer.from("{}").toString("base64url")}.AAAA`;
    const results = await Promise.all(Array.from({ length: 10 }, () => verifier.verify(rs)));
    expect(results.every((r) => !r.ok)).toBe(true);
    await verifier.verify(rs);
    expect(calls).toBe(1);
  });

  it("a JWKS larger than its bound is refused", async () => {
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ keys: [], pad: "x".repeat(100_000) })));
    const verifier = new JwtVerifier({ jwksUrl: "https://issuer.invalid/jwks", issuer: "i", audience: "a" });
    const rs = `${Buffer.from('{"alg":"RS256"}').toString("base64url")}.${Buffer.from("{}").toString("base64url")}.AAAA`;
    expect(await verifier.verify(rs)).toMatchObject({ ok: false, reason: "JWT signing key unknown" });
  });
});

describe("strings MQTT cannot frame are refused, not sent (1.5.4)", () => {
  it("a user property over 65,535 bytes throws at encoding", () => {
    const packet = {
      type: "publish" as const,
      topic: "t",
      payload: new Uint8Array(0),
      qos: 0 as const,
      dup: false as const,
      retain: false,
      properties: { userProperties: [["k", "v".repeat(70_000)] as [string, string]] },
    };
    expect(() => encode(packet, 5)).toThrow(RangeError);
  });

  it("the HTTP API checks properties as the wire decoder would", () => {
    expect(apiProperties({ contentType: "text/plain", userProperties: [["a", "b"]] })).toMatchObject({
      ok: true,
    });
    expect(apiProperties({ correlationData: Buffer.from("id").toString("base64") })).toMatchObject({
      ok: true,
      properties: { correlationData: new Uint8Array([105, 100]) },
    });
    for (const bad of [
      { topicAlias: 3 },
      { subscriptionIdentifiers: [1] },
      { contentType: 7 },
      { userProperties: "a=b" },
      { userProperties: [["a"]] },
      { userProperties: [["a", "v".repeat(70_000)]] },
      { responseTopic: "a/#" },
      { payloadFormatIndicator: 2 },
      { messageExpiryInterval: -1 },
      { correlationData: 12 },
      [1, 2],
    ]) {
      expect(apiProperties(bad), JSON.stringify(bad).slice(0, 60)).toMatchObject({ ok: false });
    }
  });
});

describe("settings past a platform limit are refused, not replaced", () => {
  it("lists every setting that cannot be used, with the limit and why", () => {
    expect(() =>
      readConfig({
        MAX_PACKET_SIZE: String(32 * 2 ** 20),
        MAX_CONNECTIONS_PER_GATEWAY: "50000",
        MAX_CLIENT_ID_LENGTH: "2048",
      }),
    ).toThrow(ConfigError);
    const thrown = (() => {
      try {
        readConfig({
          MAX_PACKET_SIZE: String(32 * 2 ** 20),
          MAX_CONNECTIONS_PER_GATEWAY: "50000",
          MAX_INFLIGHT: "lots",
        });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(thrown).toBeInstanceOf(ConfigError);
    const problems = (thrown as ConfigError).problems;
    expect(problems).toHaveLength(3);
    const about = (name: string) => problems.find((p) => p.startsWith(`${name}=`));
    expect(about("MAX_PACKET_SIZE")).toMatch(/=33554432 .* 1900000 .*2 MB/);
    expect(about("MAX_CONNECTIONS_PER_GATEWAY")).toMatch(/=50000 .*32,768/);
    expect(about("MAX_INFLIGHT")).toMatch(/=lots/);
    expect(
      readConfig({ MAX_PACKET_SIZE: "1900000", MAX_CONNECTIONS_PER_GATEWAY: "32768" }).maxPacketSize,
    ).toBe(1_900_000);
  });
});
