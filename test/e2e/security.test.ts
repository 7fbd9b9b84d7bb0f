/**
 * Safe on the open internet: authentication, authorization and limits, against a
 * broker of its own configured as a deploy would be (anonymous access off).
 */
import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import type { IClientOptions, MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { passwordEntry } from "../../broker/auth/passwords.ts";
import { ReasonCode } from "../../mqtt/index.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { connect, Inbox, RawClient, sleep, subackCodes, unique } from "../support/clients.ts";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const HS_SECRET = "jwt-hs-secret-for-tests";
const ISSUER = "https://issuer.test";
const AUDIENCE = "nimbus";

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
      MAX_CONNECTIONS_PER_GATEWAY: "60",
      PUBLISH_RATE: "20",
      PUBLISH_BURST: "20",
      CONNECT_TIMEOUT: "2",
      // These tests fail logins on purpose from one address; identity.test.ts tests the limit.
      AUTH_FAILURES_PER_MINUTE: "1000",
    },
  });
  url = broker.url;
}, 120_000);

afterAll(async () => {
  await broker?.stop();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function client(options: IClientOptions) {
  const c = await connect(url, { clientId: unique("sec"), ...options });
  open.push(c);
  return c;
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
        ).rejects.toThrow();
      } else {
        // 3.1.1: acknowledged and dropped (MQTT-3.3.5-2)
        await alice.publishAsync(`devices/${unique("not-mine")}/status`, "forged", { qos: 1 });
      }
      await inbox.waitFor(1);
      await sleep(300);
      expect(inbox.messages.map((m) => m.payload)).toEqual(["mine"]);
    },
  );

  it("uses the rules a token carries", async () => {
    const token = jwt({ sub: "carol", mqtt: { publish: ["carol/out"], subscribe: ["carol/in"] } });
    const carol = await client({ protocolVersion: 5, password: token, username: "carol" });
    const granted = await subackCodes(carol, ["carol/in", "public/news"]);
    expect(granted).toEqual([0, ReasonCode.NotAuthorized]);
    await carol.publishAsync("carol/out", "ok", { qos: 1 });
    await expect(carol.publishAsync("carol/elsewhere", "no", { qos: 1 })).rejects.toThrow();
  });

  it("checks a will when it is set", async () => {
    const r = await RawClient.open(url, 5);
    r.sendConnect(unique("will"), {
      username: "alice",
      password: new TextEncoder().encode("alice-pw"),
      will: { topic: "bob/inbox", payload: new Uint8Array(0), qos: 0, retain: false },
    });
    expect((await r.next("connack")).reasonCode).toBe(ReasonCode.NotAuthorized);
  });

  it("checks a will against the token's rules, once the token's identity is known", async () => {
    const token = jwt({ sub: "dave", mqtt: { publish: ["dave/will"], subscribe: [] } });
    const accepted = await RawClient.open(url, 5);
    accepted.sendConnect(unique("will-token"), {
      password: new TextEncoder().encode(token),
      will: { topic: "dave/will", payload: new Uint8Array(0), qos: 0, retain: false },
    });
    expect((await accepted.next("connack")).reasonCode).toBe(0);
    accepted.terminate();
    const refused = await RawClient.open(url, 5);
    refused.sendConnect(unique("will-token"), {
      password: new TextEncoder().encode(token),
      will: { topic: "alice/will", payload: new Uint8Array(0), qos: 0, retain: false },
    });
    expect((await refused.next("connack")).reasonCode).toBe(ReasonCode.NotAuthorized);
  });

  it("keeps $SYS/ read-only to clients", async () => {
    const token = jwt({ sub: "root", mqtt: { publish: ["#", "$SYS/#"], subscribe: ["#"] } });
    const root = await client({ protocolVersion: 5, password: token, username: "root" });
    await expect(root.publishAsync("$SYS/broker/uptime", "0", { qos: 1 })).rejects.toThrow();
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
    const r = await RawClient.open(url, 5);
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
        (e: Error) => codes.push(e.message),
      );
    }
    expect(codes.slice(0, 3)).toEqual(["ok", "ok", "ok"]);
    expect(codes[3]).toMatch(/quota|151/i);
    // replacing or clearing an existing retained message is still allowed
    await bob5.publishAsync(`${base}/0`, "again", { qos: 1, retain: true });
    await bob5.publishAsync(`${base}/1`, "", { qos: 1, retain: true });
    await bob5.publishAsync(`${base}/9`, "fits now", { qos: 1, retain: true });
    const r = await RawClient.open(url, 4);
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
    await r.closed;
    // make room again for other tests
    for (const t of ["0", "2", "9"]) await bob5.publishAsync(`${base}/${t}`, "", { qos: 1, retain: true });
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
      // The burst (20) went, and the few tokens earned meanwhile; the rest were dropped.
      expect(delivered).toBeGreaterThanOrEqual(20);
      expect(delivered).toBeLessThan(30);
      expect(r.isClosed).toBe(false);
      r.close();
      reader.close();
    }
  });

  it("closes every socket that never sends CONNECT, and refuses sockets past the gateway's limit with 503", async () => {
    const sockets: WebSocket[] = [];
    let refused = 0;
    for (let i = 0; i < 70; i++) {
      const ws = new WebSocket(url, "mqtt");
      const opened = await new Promise<boolean>((res) =>
        ws.once("open", () => res(true)).once("error", () => res(false)),
      );
      if (opened) sockets.push(ws);
      else refused++;
    }
    expect(sockets.length).toBeLessThanOrEqual(60);
    expect(refused).toBeGreaterThanOrEqual(10);
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
