/**
 * Safe on the open internet: authentication, authorization and limits, against a
 * broker of its own configured as a deploy would be (anonymous access off).
 */
import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";

import type { IClientOptions, MqttClient } from "mqtt";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import WebSocket from "ws";
import { passwordEntry } from "../../broker/auth/passwords.ts";
import { type ConnectPacket, ConnectReturnCode, type PublishPacket, ReasonCode } from "../../mqtt/index.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { afterRetained, connect, Inbox, RawClient, subackCodes, unique } from "../support/clients.ts";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const HS_SECRET = "jwt-hs-secret-for-tests";
const ISSUER = "https://issuer.test";
const AUDIENCE = "nimbus";

const API_TOKEN = "security-api-token";

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

function jwt(claims: Record<string, unknown>, alg: "HS256" | "RS256" | "ES256" = "HS256"): string {
  const kid = alg === "RS256" ? "rsa1" : alg === "ES256" ? "ec1" : undefined;
  const head = b64url(JSON.stringify({ alg, typ: "JWT", ...(kid ? { kid } : {}) }));
  const now = Math.floor(Date.now() / 1000);
  const body = b64url(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300, ...claims }));
  const data = `${head}.${body}`;
  let sig: Buffer;
  if (alg === "HS256") sig = createHmac("sha256", HS_SECRET).update(data).digest();
  else if (alg === "RS256") sig = sign("sha256", Buffer.from(data), rsa.privateKey);
  else sig = sign("sha256", Buffer.from(data), { key: ec.privateKey, dsaEncoding: "ieee-p1363" });
  return `${data}.${b64url(sig)}`;
}

function publicJwk(key: KeyObject, kid: string, alg: string) {
  return { ...key.export({ format: "jwk" }), kid, alg, use: "sig" };
}

const ACL = [
  { user: "alice", publish: ["alice/#", "devices/%c/#"], subscribe: ["alice/#", "public/#"] },
  { user: "bob", publish: ["bob/#", "public/#"], subscribe: ["bob/#", "public/#", "devices/+/status"] },
  { user: "*", subscribe: ["public/#"] },
];

let broker: RunningBroker;
let url: string;
const open: MqttClient[] = [];
/** Raw clients a test opened, ended after it even when it fails half way. */
const raws: RawClient[] = [];

beforeAll(async () => {
  const passwords = [await passwordEntry("alice", "alice-pw"), await passwordEntry("bob", "bob-pw")].join(
    " ",
  );
  broker = await startBroker({
    vars: {
      TOPIC_SHARDS: "1",
      GATEWAYS: "1",
      ALLOW_ANONYMOUS: "false",
      MQTT_PASSWORDS: passwords,
      JWT_SECRET: HS_SECRET,
      JWKS: JSON.stringify({
        keys: [publicJwk(rsa.publicKey, "rsa1", "RS256"), publicJwk(ec.publicKey, "ec1", "ES256")],
      }),
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      ACL: JSON.stringify(ACL),
      ALLOWED_ORIGINS: "https://app.example",
      MAX_TOPIC_LEVELS: "8",
      MAX_TOPIC_LENGTH: "128",
      MAX_RETAINED_MESSAGES: "3",
      // Low, so the byte quota is reached with a few small messages.
      MAX_RETAINED_BYTES: "4096",
      MAX_CONNECTIONS_PER_GATEWAY: "60",
      PUBLISH_RATE: "20",
      PUBLISH_BURST: "20",
      CONNECT_TIMEOUT: "2",
      // These tests fail logins on purpose from one address; identity.test.ts tests the limit.
      AUTH_FAILURES_PER_MINUTE: "1000",
      // Every line the broker can write, for the test that no payload is among them.
      LOG_LEVEL: "debug",
      // The HTTP API, to see the gateway's sockets (an operator's view).
      API_TOKEN,
    },
  });
  url = broker.url;
}, 120_000);

afterAll(async () => {
  await broker?.stop();
});

afterEach(async () => {
  for (const r of raws.splice(0)) r.terminate();
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function rawClient(version: 4 | 5, target = url): Promise<RawClient> {
  const r = await RawClient.open(target, version);
  raws.push(r);
  return r;
}

async function client(options: IClientOptions) {
  const c = await connect(url, { clientId: unique("sec"), ...options });
  open.push(c);
  return c;
}

/** Waits until the gateway holds `n` sockets (the HTTP API's view; one gateway here). */
async function gatewaySockets(n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await fetch(`${broker.httpUrl}/api/stats`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    const stats = (await res.json()) as { gateways: Array<{ sockets: number; connections: number }> };
    const held = stats.gateways.reduce((sum, g) => sum + g.sockets, 0);
    if (held === n) return;
    if (Date.now() > deadline) throw new Error(`the gateway holds ${held} sockets, not ${n}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The CONNACK code a raw CONNECT gets. */
async function connackCode(
  version: 4 | 5,
  extra: { username?: string; password?: string; clientId?: string },
) {
  const r = await RawClient.open(url, version);
  r.sendConnect(extra.clientId ?? unique("raw"), {
    protocolVersion: version,
    ...(extra.username !== undefined ? { username: extra.username } : {}),
    ...(extra.password !== undefined ? { password: new TextEncoder().encode(extra.password) } : {}),
  });
  const connack = await r.next("connack");
  r.terminate();
  return connack.reasonCode;
}

describe("authentication at CONNECT", () => {
  it("refuses anonymous clients when anonymous access is off: 3.1.1 code 5, 5.0 0x87", async () => {
    expect(await connackCode(4, {})).toBe(5);
    expect(await connackCode(5, {})).toBe(ReasonCode.NotAuthorized);
  });

  it("accepts a user name and password checked against PBKDF2 hashes", async () => {
    expect(await connackCode(4, { username: "alice", password: "alice-pw" })).toBe(0);
    expect(await connackCode(5, { username: "bob", password: "bob-pw" })).toBe(0);
  });

  it("refuses a wrong password or an unknown user: 3.1.1 code 4, 5.0 0x86", async () => {
    expect(await connackCode(4, { username: "alice", password: "nope" })).toBe(4);
    expect(await connackCode(5, { username: "alice", password: "nope" })).toBe(
      ReasonCode.BadUserNameOrPassword,
    );
    expect(await connackCode(5, { username: "mallory", password: "alice-pw" })).toBe(
      ReasonCode.BadUserNameOrPassword,
    );
  });

  it.each(["HS256", "RS256", "ES256"] as const)("accepts a %s JWT in the password field", async (alg) => {
    expect(await connackCode(5, { password: jwt({ sub: "alice" }, alg) })).toBe(0);
    expect(await connackCode(4, { username: "alice", password: jwt({ sub: "alice" }, alg) })).toBe(0);
    // The token names the principal: a user name cannot rename it (3.1.1 code 4, 5.0 0x86).
    expect(await connackCode(4, { username: "admin", password: jwt({ sub: "alice" }, alg) })).toBe(4);
    expect(await connackCode(5, { username: "admin", password: jwt({ sub: "alice" }, alg) })).toBe(
      ReasonCode.BadUserNameOrPassword,
    );
  });

  it("checks exp, nbf, iss and aud, and the signature", async () => {
    const now = Math.floor(Date.now() / 1000);
    const bad = ReasonCode.BadUserNameOrPassword;
    const sub = "alice";
    expect(await connackCode(5, { password: jwt({ sub, exp: now - 600 }) })).toBe(bad);
    expect(await connackCode(5, { password: jwt({ sub, nbf: now + 600 }) })).toBe(bad);
    expect(await connackCode(5, { password: jwt({ sub, iss: "https://evil.test" }) })).toBe(bad);
    expect(await connackCode(5, { password: jwt({ sub, aud: "someone-else" }) })).toBe(bad);
    // A token that never expires is a password that cannot be revoked: refused.
    expect(await connackCode(5, { password: jwt({ sub, exp: undefined }) })).toBe(bad);
    expect(await connackCode(5, { password: jwt({ sub, exp: String(now + 600) }) })).toBe(bad);
    // A token without the identity claim names no principal.
    expect(await connackCode(5, { password: jwt({}) })).toBe(bad);
    const token = jwt({ sub: "alice" });
    expect(await connackCode(5, { password: `${token.slice(0, -4)}AAAA` })).toBe(bad);
  });

  it("binds a token to the client id it names", async () => {
    const clientId = unique("bound");
    expect(await connackCode(5, { clientId, password: jwt({ sub: "dev", client_id: clientId }) })).toBe(0);
    expect(
      await connackCode(5, { clientId: unique("other"), password: jwt({ sub: "dev", client_id: clientId }) }),
    ).toBe(ReasonCode.NotAuthorized);
  });

  it("never writes a password or token into the logs", async () => {
    const token = jwt({ sub: "alice" });
    await connackCode(5, { username: "alice", password: "wrong-pw-SECRET" });
    await connackCode(5, { password: token });
    const logs = broker.logs();
    expect(logs).not.toContain("wrong-pw-SECRET");
    expect(logs).not.toContain("alice-pw");
    expect(logs).not.toContain(token);
    expect(logs).toContain("connect_refused");
  });
});

describe("authorization", () => {
  it.each([4, 5] as const)(
    "applies per-user publish and subscribe rules, client id patterns included (protocol %i)",
    async (version) => {
      const clientId = unique("alice-dev");
      const alice = await client({
        protocolVersion: version,
        clientId,
        username: "alice",
        password: "alice-pw",
      });
      const bob = await client({ protocolVersion: version, username: "bob", password: "bob-pw" });
      const inbox = new Inbox(bob);
      const granted = await subackCodes(bob, ["devices/+/status", "alice/secret"], { qos: 1 });
      expect(granted).toEqual([1, version === 5 ? ReasonCode.NotAuthorized : 0x80]);
      await alice.publishAsync(`devices/${clientId}/status`, "mine", { qos: 1 });
      if (version === 5) {
        // 5.0: PUBACK 0x87; MQTT.js reports it as an error
        await expect(
          alice.publishAsync(`devices/${unique("not-mine")}/status`, "forged", { qos: 1 }),
        ).rejects.toMatchObject({ code: ReasonCode.NotAuthorized });
      } else {
        // 3.1.1: acknowledged and dropped (MQTT-3.3.5-2)
        await alice.publishAsync(`devices/${unique("not-mine")}/status`, "forged", { qos: 1 });
      }
      // The marker: alice's next message, to a topic bob reads.
      await alice.publishAsync(`devices/${clientId}/status`, "marker", { qos: 1 });
      expect((await inbox.until("marker")).map((m) => m.payload)).toEqual(["mine"]);
    },
  );

  it("uses the rules a token carries", async () => {
    const token = jwt({ sub: "carol", mqtt: { publish: ["carol/out"], subscribe: ["carol/in"] } });
    const carol = await client({ protocolVersion: 5, password: token, username: "carol" });
    const granted = await subackCodes(carol, ["carol/in", "public/news"]);
    expect(granted).toEqual([0, ReasonCode.NotAuthorized]);
    await carol.publishAsync("carol/out", "ok", { qos: 1 });
    await expect(carol.publishAsync("carol/elsewhere", "no", { qos: 1 })).rejects.toMatchObject({
      code: ReasonCode.NotAuthorized,
    });
  });

  it("checks a will when it is set", async () => {
    const r = await rawClient(5);
    r.sendConnect(unique("will"), {
      username: "alice",
      password: new TextEncoder().encode("alice-pw"),
      will: { topic: "bob/inbox", payload: new Uint8Array(0), qos: 0, retain: false },
    });
    expect((await r.next("connack")).reasonCode).toBe(ReasonCode.NotAuthorized);
  });

  it("checks a will against the token's rules, once the token's identity is known", async () => {
    const token = jwt({ sub: "dave", mqtt: { publish: ["dave/will"], subscribe: [] } });
    const accepted = await rawClient(5);
    accepted.sendConnect(unique("will-token"), {
      password: new TextEncoder().encode(token),
      will: { topic: "dave/will", payload: new Uint8Array(0), qos: 0, retain: false },
    });
    expect((await accepted.next("connack")).reasonCode).toBe(0);
    accepted.terminate();
    const refused = await rawClient(5);
    refused.sendConnect(unique("will-token"), {
      password: new TextEncoder().encode(token),
      will: { topic: "alice/will", payload: new Uint8Array(0), qos: 0, retain: false },
    });
    expect((await refused.next("connack")).reasonCode).toBe(ReasonCode.NotAuthorized);
  });

  it("keeps $SYS/ read-only to clients, even one whose rules allow it: PUBACK 0x87, nothing published", async () => {
    const token = jwt({ sub: "root", mqtt: { publish: ["#", "$SYS/#"], subscribe: ["#", "$SYS/#"] } });
    const root = await client({ protocolVersion: 5, password: token, username: "root" });
    const inbox = new Inbox(root);
    const marker = `root/${unique("marker")}`;
    // The broker's own uptime comes too (at once, then every SYS_INTERVAL): never "forged".
    await root.subscribeAsync(["$SYS/broker/uptime", marker], { qos: 1 });
    await root.publishAsync("$SYS/broker/uptime", "forged at QoS 0", { qos: 0 });
    await expect(
      root.publishAsync("$SYS/broker/uptime", "forged at QoS 1", { qos: 1 }),
    ).rejects.toMatchObject({
      code: ReasonCode.NotAuthorized,
    });
    // One shard here: the marker follows whatever the refused publishes would have routed.
    await root.publishAsync(marker, "marker", { qos: 1 });
    expect((await inbox.until("marker")).filter((m) => m.payload.startsWith("forged"))).toEqual([]);
  });

  it("refuses a QoS 2 publish the ACL denies: 5.0 PUBREC 0x87, 3.1.1 the flow completes (MQTT-3.3.5-2); nothing published", async () => {
    const bob = await client({ protocolVersion: 5, username: "bob", password: "bob-pw" });
    const inbox = new Inbox(bob);
    const clientId = unique("alice-q2");
    await bob.subscribeAsync(["devices/+/status"], { qos: 2 });
    for (const version of [5, 4] as const) {
      const alice = await rawClient(version);
      alice.sendConnect(clientId, { username: "alice", password: new TextEncoder().encode("alice-pw") });
      expect((await alice.next("connack")).reasonCode).toBe(0);
      const publish = (topic: string, payload: string, packetId: number) =>
        alice.send({
          type: "publish",
          topic,
          payload: new TextEncoder().encode(payload),
          qos: 2,
          dup: false,
          retain: false,
          packetId,
        });
      publish(`devices/${unique("not-mine")}/status`, "forged", 1);
      const pubrec = await alice.next("pubrec");
      if (version === 5) {
        // 0x80 or more ends the flow: no PUBREL is due (MQTT-4.3.3-4).
        expect(pubrec).toMatchObject({ packetId: 1, reasonCode: ReasonCode.NotAuthorized });
      } else {
        expect(pubrec).toEqual({ type: "pubrec", packetId: 1 });
        alice.send({ type: "pubrel", packetId: 1 });
        expect(await alice.next("pubcomp")).toEqual({ type: "pubcomp", packetId: 1 });
      }
      publish(`devices/${clientId}/status`, `marker ${version}`, 2);
      await alice.next("pubrec");
      alice.send({ type: "pubrel", packetId: 2 });
      await alice.next("pubcomp");
      expect((await inbox.until(`marker ${version}`)).filter((m) => m.payload === "forged")).toEqual([]);
      alice.close();
      await alice.closed;
    }
  });
});

describe("limits", () => {
  it("refuses WebSocket upgrades from origins not on the allow-list with 403", async () => {
    const refused = new WebSocket(url, "mqtt", { headers: { Origin: "https://evil.example" } });
    await expect(new Promise((res, rej) => refused.once("open", res).once("error", rej))).rejects.toThrow(
      /403/,
    );
    const allowed = new WebSocket(url, "mqtt", { headers: { Origin: "https://app.example" } });
    await new Promise((res, rej) => allowed.once("open", res).once("error", rej));
    allowed.close();
  });

  it("refuses topics with too many levels or bytes: 0x90 on PUBLISH, 0x8F in SUBACK", async () => {
    const bob = await client({ protocolVersion: 5, username: "bob", password: "bob-pw" });
    const granted = await subackCodes(bob, ["public/a/b/c/d/e/f/g/h/i", `public/${"x".repeat(200)}`]);
    expect(granted).toEqual([ReasonCode.TopicFilterInvalid, ReasonCode.TopicFilterInvalid]);
    const r = await rawClient(5);
    r.sendConnect(unique("deep"), { username: "bob", password: new TextEncoder().encode("bob-pw") });
    await r.next("connack");
    r.send({
      type: "publish",
      topic: "public/1/2/3/4/5/6/7/8",
      payload: new Uint8Array(0),
      qos: 0,
      dup: false,
      retain: false,
    });
    expect((await r.next("disconnect")).reasonCode).toBe(ReasonCode.TopicNameInvalid);
  });

  it("refuses retained messages past the shard's quota with 0x97, and closes a 3.1.1 client", async () => {
    const bob5 = await client({ protocolVersion: 5, username: "bob", password: "bob-pw" });
    const base = unique("public/ret");
    const codes: string[] = [];
    for (let i = 0; i < 4; i++) {
      await bob5.publishAsync(`${base}/${i}`, "r", { qos: 1, retain: true }).then(
        () => codes.push("ok"),
        (e: { code?: number }) => codes.push(`refused ${e.code}`),
      );
    }
    expect(codes.slice(0, 3)).toEqual(["ok", "ok", "ok"]);
    expect(codes[3]).toBe(`refused ${ReasonCode.QuotaExceeded}`);
    // replacing or clearing an existing retained message is still allowed
    await bob5.publishAsync(`${base}/0`, "again", { qos: 1, retain: true });
    await bob5.publishAsync(`${base}/1`, "", { qos: 1, retain: true });
    await bob5.publishAsync(`${base}/9`, "fits now", { qos: 1, retain: true });
    const r = await rawClient(4);
    r.sendConnect(unique("ret4"), { username: "bob", password: new TextEncoder().encode("bob-pw") });
    await r.next("connack");
    r.send({
      type: "publish",
      topic: `${base}/10`,
      payload: new Uint8Array(1),
      qos: 1,
      dup: false,
      retain: true,
      packetId: 1,
    });
    // A 3.1.1 PUBACK has no code to carry 0x97: the connection ends (a bound of the
    // client's own: 1008 Policy Violation, broker/protocol/close.ts closeCodeOf), and no PUBACK comes.
    expect(await r.closed).toEqual({ code: 1008, reason: "retained message quota exceeded" });
    expect(r.drain()).toEqual([]);
    // make room again for other tests
    for (const t of ["0", "2", "9"]) await bob5.publishAsync(`${base}/${t}`, "", { qos: 1, retain: true });
  });

  it("refuses retained messages past MAX_RETAINED_BYTES with 0x97; a replacement counts only its own bytes", async () => {
    // 4,096 bytes of retained payloads here (one shard), all free at this point.
    const bob5 = await client({ protocolVersion: 5, username: "bob", password: "bob-pw" });
    const base = unique("public/bytes");
    const retain = (topic: string, bytes: number) =>
      bob5.publishAsync(`${base}/${topic}`, Buffer.alloc(bytes, 0x61), { qos: 1, retain: true });
    await retain("a", 3_000);
    await expect(retain("b", 1_097)).rejects.toMatchObject({ code: ReasonCode.QuotaExceeded });
    await retain("b", 1_096); // exactly the bound
    await retain("a", 2_000); // replacing a: 2,000 + 1,096
    await retain("c", 1_000);
    await expect(retain("d", 1)).rejects.toMatchObject({ code: ReasonCode.QuotaExceeded });
    // What a new subscriber gets is what was stored: never a refused message.
    const reader = await client({ protocolVersion: 5, username: "bob", password: "bob-pw" });
    const inbox = new Inbox(reader);
    await reader.subscribeAsync(`${base}/+`, { qos: 1 });
    const stored = await afterRetained(reader, inbox, bob5, `${base}/marker`);
    expect(stored.map((m) => [m.topic, m.payload.length]).sort()).toEqual([
      [`${base}/a`, 2_000],
      [`${base}/b`, 1_096],
      [`${base}/c`, 1_000],
    ]);
    for (const t of ["a", "b", "c"]) await retain(t, 0);
  });

  it("drops and counts QoS 0 published faster than PUBLISH_RATE; the client stays connected", async () => {
    for (const version of [5, 4] as const) {
      const topic = `public/fast-${version}-${Date.now()}`;
      const reader = await RawClient.open(url, 5);
      reader.sendConnect(unique("fast-reader"), {
        username: "bob",
        password: new TextEncoder().encode("bob-pw"),
      });
      await reader.next("connack");
      expect((await reader.subscribe(topic, 1)).reasonCodes).toEqual([1]);
      const r = await RawClient.open(url, version);
      r.sendConnect(unique("fast"), {
        protocolVersion: version,
        username: "bob",
        password: new TextEncoder().encode("bob-pw"),
      });
      await r.next("connack");
      // 60 at once to a broker allowing 20 a second with a burst of 20.
      const started = Date.now();
      for (let i = 0; i < 60; i++) {
        r.send({ type: "publish", topic, payload: new Uint8Array(0), qos: 0, dup: false, retain: false });
      }
      // A QoS 1 marker after them waits for a token and is acknowledged: still connected.
      r.send({
        type: "publish",
        topic,
        payload: new TextEncoder().encode("marker"),
        qos: 1,
        dup: false,
        retain: false,
        packetId: 1,
      });
      expect((await r.next("puback", 15_000)).packetId).toBe(1);
      let delivered = 0;
      for (;;) {
        const p = await reader.next("publish", 15_000);
        if (new TextDecoder().decode(p.payload) === "marker") break;
        delivered++;
      }
      // The burst (20) went, and the tokens earned while they were read (20 a second,
      // the marker's among them); the rest were dropped.
      const seconds = (Date.now() - started) / 1000;
      expect(delivered).toBeGreaterThanOrEqual(20);
      expect(delivered).toBeLessThanOrEqual(20 + Math.ceil(20 * seconds));
      expect(delivered).toBeLessThan(60);
      expect(r.isClosed).toBe(false);
      r.close();
      reader.close();
    }
  });

  it("refuses sockets past MAX_CONNECTIONS_PER_GATEWAY with 503, and closes every socket that never sends CONNECT", async () => {
    // 60 here (10,000 by default, which a test cannot reach). Sockets of earlier
    // tests are gone first, so that the count is exact.
    await gatewaySockets(0);
    const sockets: WebSocket[] = [];
    const refusals: number[] = [];
    // Sockets the broker closed (CONNECT_TIMEOUT, 2 s here) before the last one
    // was answered: each frees a place that a later socket may take.
    let closedEarly = 0;
    let opening = true;
    await Promise.all(
      Array.from({ length: 70 }, async () => {
        const ws = new WebSocket(url, "mqtt");
        const status = await new Promise<number>((res) =>
          ws
            .once("open", () => res(101))
            .once("unexpected-response", (req, response) => {
              res(response.statusCode ?? 0);
              req.destroy();
            })
            .on("error", () => res(0)),
        );
        if (status !== 101) return refusals.push(status);
        sockets.push(ws);
        ws.once("close", () => {
          if (opening) closedEarly++;
        });
      }),
    );
    opening = false;
    expect(sockets.length - closedEarly).toBe(60);
    expect(refusals).toEqual(Array(10 - closedEarly).fill(503));
    const closed = await Promise.all(
      sockets.map(
        (ws) =>
          new Promise<boolean>((res) => {
            const timer = setTimeout(() => res(false), 25_000);
            ws.once("close", () => {
              clearTimeout(timer);
              res(true);
            });
          }),
      ),
    );
    expect(closed.every(Boolean)).toBe(true);
    // room again once they are gone
    expect(await connackCode(5, { username: "bob", password: "bob-pw" })).toBe(0);
  }, 60_000);
});

describe("logs", () => {
  it("never write a payload, whichever way a message is refused or dropped", async () => {
    const secret = (what: string) => `payload-secret-${what}`;
    const utf8 = (text: string) => new TextEncoder().encode(text);
    const bob = async (properties: ConnectPacket["properties"] = {}) => {
      const r = await rawClient(5);
      r.sendConnect(unique("bob-log"), { username: "bob", password: utf8("bob-pw"), properties });
      expect((await r.next("connack")).reasonCode).toBe(0);
      return r;
    };
    type More = { retain?: boolean; packetId?: number; properties?: PublishPacket["properties"] };
    const publish = (r: RawClient, topic: string, payload: Uint8Array, more: More = {}) =>
      r.send({ type: "publish", topic, payload, qos: 1, dup: false, retain: false, packetId: 1, ...more });

    // Denied by the ACL: publish_denied.
    const alice = await rawClient(5);
    alice.sendConnect(unique("alice-log"), { username: "alice", password: utf8("alice-pw") });
    await alice.next("connack");
    publish(alice, `devices/${unique("not-mine")}/status`, utf8(secret("denied")));
    expect((await alice.next("puback")).reasonCode).toBe(ReasonCode.NotAuthorized);
    // Not UTF-8 though it says so: publish_refused.
    const b1 = await bob();
    publish(b1, "public/log", Uint8Array.from([...utf8(secret("utf8")), 0xff]), {
      properties: { payloadFormatIndicator: 1 },
    });
    expect((await b1.next("puback")).reasonCode).toBe(ReasonCode.PayloadFormatInvalid);
    // Past the retained quota (4,096 bytes): retained_quota.
    publish(b1, `public/${unique("log")}`, utf8(secret("retained").repeat(300)), {
      retain: true,
      packetId: 2,
    });
    expect((await b1.next("puback")).reasonCode).toBe(ReasonCode.QuotaExceeded);
    // Too large for a subscriber's Maximum Packet Size: discarded_too_large.
    const small = await bob({ maximumPacketSize: 100 });
    expect((await small.subscribe("public/log-big", 0)).reasonCodes).toEqual([0]);
    publish(b1, "public/log-big", utf8(secret("too-large").repeat(10)), { packetId: 3 });
    expect((await b1.next("puback")).reasonCode ?? 0).toBe(0);
    // A will the ACL denies: connect_refused.
    const will = await rawClient(5);
    will.sendConnect(unique("will-log"), {
      username: "alice",
      password: utf8("alice-pw"),
      will: { topic: "bob/inbox", payload: utf8(secret("will")), qos: 0, retain: false },
    });
    expect((await will.next("connack")).reasonCode).toBe(ReasonCode.NotAuthorized);
    // A topic too deep (DISCONNECT 0x90), and a malformed PUBLISH (QoS 3): protocol_error.
    const b2 = await bob();
    publish(b2, "public/1/2/3/4/5/6/7/8", utf8(secret("deep")));
    expect((await b2.next("disconnect")).reasonCode).toBe(ReasonCode.TopicNameInvalid);
    const b3 = await bob();
    const body = [0, 8, ...utf8("public/x"), 0, 1, ...utf8(secret("malformed"))];
    b3.send(Uint8Array.from([0x36, body.length, ...body]));
    expect((await b3.next("disconnect")).reasonCode).toBe(ReasonCode.MalformedPacket);

    // Every line above is written before its answer is sent; wrangler passes them on.
    const events = ["publish_denied", "publish_refused", "retained_quota", "discarded_too_large"];
    events.push("connect_refused", "protocol_error");
    const deadline = Date.now() + 10_000;
    while (!events.every((e) => broker.logs().includes(`"event":"${e}"`)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const logs = broker.logs();
    for (const e of events) expect(logs).toContain(`"event":"${e}"`);
    expect(logs).not.toContain("payload-secret");
  });
});

describe("client ids tied to principals (CLIENT_ID_PATTERN), on a broker of their own", () => {
  let tied: RunningBroker;

  beforeAll(async () => {
    const passwords = [await passwordEntry("alice", "alice-pw"), await passwordEntry("bob", "bob-pw")];
    tied = await startBroker({
      vars: {
        TOPIC_SHARDS: "1",
        GATEWAYS: "1",
        ALLOW_ANONYMOUS: "true",
        MQTT_PASSWORDS: passwords.join(" "),
        CLIENT_ID_PATTERN: "%u-*",
      },
    });
  }, 120_000);

  afterAll(async () => {
    await tied?.stop();
  });

  /** A raw client's CONNACK, as `user` (password `<user>-pw`) or anonymous. */
  async function connectAs(version: 4 | 5, clientId: string, user: string | undefined) {
    const r = await rawClient(version, tied.url);
    r.sendConnect(clientId, {
      protocolVersion: version,
      ...(user === undefined ? {} : { username: user, password: new TextEncoder().encode(`${user}-pw`) }),
    });
    return { r, connack: await r.next("connack") };
  }

  it.each([4, 5] as const)(
    "a client id must fit the pattern: alice-… for alice, not bob-… (protocol %i: refused with 3.1.1 code 2, 5.0 0x85)",
    async (v) => {
      const refused = v === 5 ? ReasonCode.ClientIdentifierNotValid : ConnectReturnCode.IdentifierRejected;
      const code = async (clientId: string, user: string | undefined) => {
        const { r, connack } = await connectAs(v, clientId, user);
        if (connack.reasonCode !== 0) expect((await r.closed).code).toBe(1000);
        r.terminate();
        return connack.reasonCode;
      };
      expect(await code(`alice-${unique("phone")}`, "alice")).toBe(0);
      expect(await code("alice-", "alice")).toBe(0); // `*` may stand for nothing
      expect(await code("alice", "alice")).toBe(refused);
      expect(await code(`xalice-${unique("phone")}`, "alice")).toBe(refused);
      // Anonymous clients have no name to put in the pattern.
      expect(await code(`anonymous-${unique("x")}`, undefined)).toBe(refused);

      // Refused before any session is claimed: bob's connection with his id carries on.
      const id = `bob-${unique("phone")}`;
      const { r: owner, connack } = await connectAs(v, id, "bob");
      expect(connack.reasonCode).toBe(0);
      expect(await code(id, "alice")).toBe(refused);
      owner.send({ type: "pingreq" });
      expect(await owner.next("pingresp")).toEqual({ type: "pingresp" });
      expect(owner.drain()).toEqual([]);
      owner.terminate();
    },
  );

  it("a client id the server assigns is exempt (5.0 Assigned Client Identifier, 3.1.1 clean session)", async () => {
    const v5 = await connectAs(5, "", "alice");
    expect(v5.connack.reasonCode).toBe(0);
    expect(v5.connack.properties?.assignedClientIdentifier).toMatch(/^nimbus-/);
    v5.r.terminate();
    const v4 = await connectAs(4, "", "alice");
    expect(v4.connack.reasonCode).toBe(0);
    v4.r.terminate();
  });
});
