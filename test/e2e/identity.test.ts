/**
 * One principal per connection (DESIGN.md, Identity; invariant 7), tried as a
 * hostile user with valid credentials of their own would, against brokers of
 * their own in both layouts: one shard and gateway, four shards and three
 * gateways (where attacker and victim usually sit on different gateways).
 */
import { createHmac } from "node:crypto";
import type { MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { passwordEntry } from "../../broker/auth/passwords.ts";
import { type ConnectPacket, ConnectReturnCode, encode, ReasonCode } from "../../mqtt/index.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { connect, Inbox, RawClient, unique } from "../support/clients.ts";
import { connectPacket } from "../support/packets.ts";

const JWT_SECRET = "identity-jwt-secret";
const HMAC_SECRET = "identity-hmac-secret";
const METHOD = "NIMBUS-HMAC-SHA256";
const ACL = [
  { user: "*", publish: ["users/%u/#", "devices/%c/#"], subscribe: ["users/%u/#", "devices/%c/#"] },
];
const LAYOUTS = [
  { name: "1 shard, 1 gateway", shards: "1", gateways: "1" },
  { name: "4 shards, 3 gateways", shards: "4", gateways: "3" },
];

const utf8 = (s: string) => new TextEncoder().encode(s);

function token(claims: Record<string, unknown>): string {
  const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const data = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ exp: now + 300, ...claims })}`;
  return `${data}.${createHmac("sha256", JWT_SECRET).update(data).digest("base64url")}`;
}

/** A device's NIMBUS-HMAC-SHA256 key: HMAC(secret, its name). */
const deviceKey = (name: string) => createHmac("sha256", HMAC_SECRET).update(name).digest();

let addresses = 0;
/**
 * Every raw client comes from an address of its own (wrangler dev keeps a
 * CF-Connecting-IP the client sends; Cloudflare's edge sets it), so that the
 * failed logins some tests make count against no other test's address.
 */
function freshAddress(): Record<string, string> {
  addresses++;
  return { "CF-Connecting-IP": `198.51.${100 + (addresses >> 8)}.${addresses & 0xff}` };
}

/** One frame: alice's 3.1.1 CONNECT, then `pings` PINGREQs. */
function connectThenPings(clientId: string, pings: number): Uint8Array {
  const connect = encode(connectPacket(clientId, 4, { username: "alice", password: utf8("alice-pw") }), 4);
  const frame = new Uint8Array(connect.length + 2 * pings);
  frame.set(connect);
  for (let i = connect.length; i < frame.length; i += 2) frame[i] = 0xc0;
  return frame;
}

const expiryFor = (v: 4 | 5) => (v === 5 ? { properties: { sessionExpiryInterval: 300 } } : {});
const notAuthorized = (v: 4 | 5) => (v === 5 ? ReasonCode.NotAuthorized : ConnectReturnCode.NotAuthorized);
const badCredentials = (v: 4 | 5) =>
  v === 5 ? ReasonCode.BadUserNameOrPassword : ConnectReturnCode.BadUserNameOrPassword;

describe.each(LAYOUTS)("identity, $name", (layout) => {
  let broker: RunningBroker;
  let url: string;
  let vars: Record<string, string>;
  const raws: RawClient[] = [];
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    const passwords = await Promise.all(
      ["alice", "bob", "mallory", "#"].map((u) => passwordEntry(u, `${u}-pw`)),
    );
    vars = {
      TOPIC_SHARDS: layout.shards,
      GATEWAYS: layout.gateways,
      ALLOW_ANONYMOUS: "false",
      MQTT_PASSWORDS: passwords.join(" "),
      JWT_SECRET,
      AUTH_HMAC_SECRET: HMAC_SECRET,
      ACL: JSON.stringify(ACL),
      AUTH_FAILURES_PER_MINUTE: "5",
      // Failed logins are counted per gateway: with "ip" one address always
      // meets the same one (the README says so). Tests' clients come from
      // addresses of their own, so attacker and victim still meet on different
      // gateways in the second layout.
      GATEWAY_POLICY: "ip",
      API_TOKEN: "identity-api-token",
    };
    broker = await startBroker({ vars });
    url = broker.url;
  }, 120_000);

  afterAll(async () => {
    await broker?.stop();
  });

  afterEach(async () => {
    for (const r of raws.splice(0)) r.terminate();
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  async function raw(version: 4 | 5, headers = freshAddress()): Promise<RawClient> {
    const r = await RawClient.open(url, version, "mqtt", headers);
    raws.push(r);
    return r;
  }

  /** CONNECT as `user` (password `<user>-pw` unless `password` is given); the CONNACK. */
  async function connectAs(
    version: 4 | 5,
    clientId: string,
    user: string | undefined,
    extra: Partial<ConnectPacket> & { password?: Uint8Array } = {},
  ) {
    const r = await raw(version);
    r.sendConnect(clientId, {
      ...(user === undefined ? {} : { username: user, password: utf8(`${user}-pw`) }),
      ...extra,
    });
    return { r, connack: await r.next("connack") };
  }

  async function mqttjs(version: 4 | 5, user: string, clientId = unique(user)): Promise<MqttClient> {
    const c = await connect(url, {
      protocolVersion: version,
      clientId,
      username: user,
      password: `${user}-pw`,
    });
    clients.push(c);
    return c;
  }

  /** Answers the HMAC challenge of a CONNECT made with `method`, with the key of `keyOf`. */
  async function hmacConnect(
    clientId: string,
    username: string,
    keyOf: string,
    extra: Partial<ConnectPacket> = {},
  ) {
    const r = await raw(5);
    r.sendConnect(clientId, {
      username,
      ...extra,
      properties: { authenticationMethod: METHOD, ...extra.properties },
    });
    const challenge = (await r.next("auth")).properties?.authenticationData as Uint8Array;
    const answer = createHmac("sha256", deviceKey(keyOf)).update(challenge).update(clientId).digest();
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: METHOD, authenticationData: new Uint8Array(answer) },
    });
    return { r, connack: await r.next("connack") };
  }

  describe.each([4, 5] as const)("protocol %i", (v) => {
    it("another user can neither resume nor wipe an offline session, whose queue stays its owner's (invariant 7)", async () => {
      const id = unique("bob-device");
      const topic = `users/bob/${id}`;
      const { r: bob, connack } = await connectAs(v, id, "bob", { cleanStart: false, ...expiryFor(v) });
      expect(connack.reasonCode).toBe(0);
      expect((await bob.subscribe(`${topic}/#`, 1)).reasonCodes).toEqual([1]);
      bob.send({ type: "disconnect", reasonCode: 0 });
      await bob.closed;
      const sender = await mqttjs(v, "bob");
      await sender.publishAsync(`${topic}/queued`, "for bob only", { qos: 1 });

      // Mallory has valid credentials of her own: to resume, then to wipe.
      for (const cleanStart of [false, true]) {
        const { r, connack: refused } = await connectAs(v, id, "mallory", { cleanStart, ...expiryFor(v) });
        expect(refused.reasonCode).toBe(notAuthorized(v));
        expect(refused.sessionPresent).toBe(false);
        await r.closed;
        expect(r.drain().filter((p) => p.type === "publish")).toEqual([]);
      }

      // Bob's session is as he left it: present, subscribed, with its queued message.
      const { r: back, connack: resumed } = await connectAs(v, id, "bob", {
        cleanStart: false,
        ...expiryFor(v),
      });
      expect(resumed.reasonCode).toBe(0);
      expect(resumed.sessionPresent).toBe(true);
      const queued = await back.next("publish");
      expect(queued.topic).toBe(`${topic}/queued`);
      expect(new TextDecoder().decode(queued.payload)).toBe("for bob only");
    });

    it("another user cannot take over an online session: the owner stays connected and no will fires", async () => {
      const id = unique("bob-online");
      const topic = `users/bob/${id}`;
      const watcher = await mqttjs(v, "bob");
      const inbox = new Inbox(watcher);
      await watcher.subscribeAsync(`${topic}/#`, { qos: 1 });
      const will = { topic: `${topic}/will`, payload: utf8("bob died"), qos: 1 as const, retain: false };
      const { r: bob, connack } = await connectAs(v, id, "bob", { will, keepAlive: 0 });
      expect(connack.reasonCode).toBe(0);

      const { r: mallory, connack: refused } = await connectAs(v, id, "mallory");
      expect(refused.reasonCode).toBe(notAuthorized(v));
      await mallory.closed;

      // Bob's connection works and got no DISCONNECT; the marker is the first thing
      // the watcher sees, so no will was published before it (order per publisher).
      bob.send({
        type: "publish",
        topic: `${topic}/marker`,
        payload: utf8("still here"),
        qos: 1,
        dup: false,
        retain: false,
        packetId: 7,
      });
      expect((await bob.next("puback")).packetId).toBe(7);
      expect(bob.drain().map((p) => p.type)).toEqual([]);
      await inbox.waitFor(1);
      expect(inbox.messages.map((m) => m.topic)).toEqual([`${topic}/marker`]);
      expect(bob.isClosed).toBe(false);
    });

    it("a token is its subject's, and a token's subject is not the password user of that name: both are refused the session", async () => {
      const id = unique("bob-token");
      const { r: bob } = await connectAs(v, id, "bob", { cleanStart: false, ...expiryFor(v) });
      await bob.subscribe(`users/bob/${id}/#`, 1);
      bob.send({ type: "disconnect", reasonCode: 0 });
      await bob.closed;

      // 3.1.1 sends a password only with a user name (MQTT-3.1.2-22): the subject's own.
      const asToken = (sub: string) => ({
        ...(v === 4 ? { username: sub } : {}),
        password: utf8(token({ sub })),
      });
      for (const sub of ["mallory", "bob"]) {
        const other = await connectAs(v, id, undefined, { cleanStart: true, ...asToken(sub) });
        expect(other.connack.reasonCode).toBe(notAuthorized(v));
      }
      // The password user bob still has it; and a token's session is its subject's by token only.
      const back = await connectAs(v, id, "bob", { cleanStart: false, ...expiryFor(v) });
      expect(back.connack.sessionPresent).toBe(true);
      const tokenId = unique("token-bob");
      const first = await connectAs(v, tokenId, undefined, {
        cleanStart: false,
        ...expiryFor(v),
        ...asToken("bob"),
      });
      expect(first.connack.reasonCode).toBe(0);
      first.r.send({ type: "disconnect", reasonCode: 0 });
      await first.r.closed;
      expect((await connectAs(v, tokenId, "bob", { cleanStart: true })).connack.reasonCode).toBe(
        notAuthorized(v),
      );
      const again = await connectAs(v, tokenId, undefined, {
        cleanStart: false,
        ...expiryFor(v),
        ...asToken("bob"),
      });
      expect(again.connack.sessionPresent).toBe(true);
    });

    it("a token's identity cannot be renamed by the CONNECT user name: 3.1.1 code 4, 5.0 0x86", async () => {
      const renamed = await connectAs(v, unique("rename"), undefined, {
        username: "alice",
        password: utf8(token({ sub: "bob" })),
      });
      expect(renamed.connack.reasonCode).toBe(badCredentials(v));
      const same = await connectAs(v, unique("same"), undefined, {
        username: "bob",
        password: utf8(token({ sub: "bob" })),
      });
      expect(same.connack.reasonCode).toBe(0);
      // Bob's ACL, not Alice's: %u is the token's subject.
      const codes = await same.r.subscribe("users/alice/#", 1);
      expect(codes.reasonCodes).toEqual([v === 5 ? ReasonCode.NotAuthorized : 0x80]);
    });

    it("a token that expires while connected ends the connection then: 5.0 DISCONNECT 0xA0 Maximum connect time, 3.1.1 a close; the will goes out and the session stays", async () => {
      const id = unique("expiring");
      const willTopic = `users/bob/${id}/will`;
      const watcher = await connectAs(v, unique("watch"), "bob");
      await watcher.r.subscribe(willTopic, 1);
      // exp 28 s ago, within the 30 s leeway: accepted, and expiring 2 s from now.
      const exp = Math.floor(Date.now() / 1000) - 28;
      const { r, connack } = await connectAs(v, id, undefined, {
        ...(v === 4 ? { username: "bob" } : {}),
        password: utf8(token({ sub: "bob", exp })),
        cleanStart: false,
        ...expiryFor(v),
        will: { topic: willTopic, payload: utf8("gone"), qos: 1, retain: false },
      });
      expect(connack.reasonCode).toBe(0);
      if (v === 5) {
        const disconnect = await r.next("disconnect", 10_000);
        expect(disconnect.reasonCode).toBe(ReasonCode.MaximumConnectTime);
      }
      await r.closed;
      // Not before the token's end (exp + leeway); how soon after it is the alarm's (checked
      // without it, the connection stays until the 10 s DISCONNECT wait above fails the test).
      expect(Date.now()).toBeGreaterThanOrEqual((exp + 30) * 1000);
      const will = await watcher.r.next("publish");
      expect(will.topic).toBe(willTopic);
      // A fresh token resumes the session (3.1.1 MQTT-3.1.2-4, 5.0 MQTT-3.1.2-5: the session outlives the connection).
      const again = await connectAs(v, id, undefined, {
        ...(v === 4 ? { username: "bob" } : {}),
        password: utf8(token({ sub: "bob" })),
        cleanStart: false,
        ...expiryFor(v),
      });
      expect(again.connack.reasonCode).toBe(0);
      expect(again.connack.sessionPresent).toBe(true);
    });

    it.each(["#", "+", "x/+", "a/b"])(
      "client id %s stands in no ACL pattern (devices/{client id}/#): it gets nothing beyond its own topics",
      async (clientId) => {
        const { r, connack } = await connectAs(v, clientId, "alice");
        expect(connack.reasonCode).toBe(0);
        const denied = v === 5 ? ReasonCode.NotAuthorized : 0x80;
        r.send({
          type: "subscribe",
          packetId: 1,
          subscriptions: ["devices/#", "devices/+/secret", `devices/${clientId}`].map((topicFilter) => ({
            topicFilter,
            qos: 1 as const,
            noLocal: false,
            retainAsPublished: false,
            retainHandling: 0 as const,
          })),
        });
        expect((await r.next("suback")).reasonCodes).toEqual([denied, denied, denied]);
        if (v === 5) {
          r.send({
            type: "publish",
            topic: "devices/other/cmd",
            payload: utf8("x"),
            qos: 1,
            dup: false,
            retain: false,
            packetId: 2,
          });
          expect((await r.next("puback")).reasonCode).toBe(ReasonCode.NotAuthorized);
        }
        // Her own topics still work with that client id.
        expect((await r.subscribe("users/alice/#", 1, 3)).reasonCodes).toEqual([1]);
      },
    );

    it("client id %u with user # (each substituted once, neither a pattern) gets nothing beyond its own topics", async () => {
      const { r, connack } = await connectAs(v, "%u", "#");
      expect(connack.reasonCode).toBe(0);
      const denied = v === 5 ? ReasonCode.NotAuthorized : 0x80;
      const wide = ["devices/#", "devices/+/cmd", "users/#", "users/+/x", "devices/alice-phone/#"];
      r.send({
        type: "subscribe",
        packetId: 1,
        subscriptions: [...wide, "devices/%u/#"].map((topicFilter) => ({
          topicFilter,
          qos: 1 as const,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 0 as const,
        })),
      });
      // Its own: devices/{client id}/# with the client id as text; nothing through %u.
      expect((await r.next("suback")).reasonCodes).toEqual([...wide.map(() => denied), 1]);
      if (v === 5) {
        for (const [i, topic] of ["devices/alice-phone/cmd", "users/alice/x", "devices/%u/cmd"].entries()) {
          r.send({
            type: "publish",
            topic,
            payload: utf8("x"),
            qos: 1,
            dup: false,
            retain: false,
            packetId: 10 + i,
          });
          // Its own topic, which it subscribes to: accepted (0x00, left out of the PUBACK).
          expect((await r.next("puback")).reasonCode ?? 0).toBe(i < 2 ? ReasonCode.NotAuthorized : 0);
        }
      }
    });

    it("a client id longer than MAX_CLIENT_ID_LENGTH is refused (0x85 / 2) before any session is claimed, with a clean close", async () => {
      const { r, connack } = await connectAs(v, "x".repeat(65_000), "alice");
      expect(connack.reasonCode).toBe(
        v === 5 ? ReasonCode.ClientIdentifierNotValid : ConnectReturnCode.IdentifierRejected,
      );
      expect((await r.closed).code).toBe(1000);
      // MAX_CLIENT_ID_LENGTH is 256 bytes by default: one more is refused the same way.
      expect((await connectAs(v, "y".repeat(257), "alice")).connack.reasonCode).toBe(
        v === 5 ? ReasonCode.ClientIdentifierNotValid : ConnectReturnCode.IdentifierRejected,
      );
      expect((await connectAs(v, "y".repeat(256), "alice")).connack.reasonCode).toBe(0);
    });

    /** CONNECT as alice from `address` with `password`; the CONNACK code. */
    async function attemptFrom(address: Record<string, string>, password: string) {
      const r = await raw(v, address);
      r.sendConnect(unique("guess"), { username: "alice", password: utf8(password) });
      return (await r.next("connack")).reasonCode;
    }
    const throttled = v === 5 ? ReasonCode.ConnectionRateExceeded : ConnectReturnCode.ServerUnavailable;

    it("failed authentications are limited per address: past AUTH_FAILURES_PER_MINUTE, 0x9F / 3 without a check", async () => {
      const address = freshAddress();
      const attempt = (password: string) => attemptFrom(address, password);
      for (let i = 0; i < 5; i++) expect(await attempt(`guess-${i}`)).toBe(badCredentials(v));
      expect(await attempt("guess-6")).toBe(throttled);
      // Even the right password waits for the budget to refill; other addresses do not.
      expect(await attempt("alice-pw")).toBe(throttled);
      expect((await connectAs(v, unique("elsewhere"), "alice")).connack.reasonCode).toBe(0);
    });

    it("a successful login costs no budget: the address still has all AUTH_FAILURES_PER_MINUTE after many", async () => {
      const address = freshAddress();
      const attempt = (password: string) => attemptFrom(address, password);
      // 5 failures a minute here: 4, then successes, then the fifth is still checked.
      for (let i = 0; i < 4; i++) expect(await attempt(`guess-${i}`)).toBe(badCredentials(v));
      for (let i = 0; i < 8; i++) expect(await attempt("alice-pw")).toBe(0);
      expect(await attempt("guess-4")).toBe(badCredentials(v));
      expect(await attempt("guess-5")).toBe(throttled);
    });
  });

  describe("enhanced authentication (NIMBUS-HMAC-SHA256, derived device keys)", () => {
    it("proves the name: a device's key answers for its own name only", async () => {
      const own = await hmacConnect(unique("dev-a"), "dev-a", "dev-a");
      expect(own.connack.reasonCode).toBe(0);
      const posing = await hmacConnect(unique("dev-x"), "dev-a", "dev-b");
      expect(posing.connack.reasonCode).toBe(ReasonCode.NotAuthorized);
    });

    it("another device cannot take a device's session", async () => {
      const id = unique("dev-a-session");
      const owner = await hmacConnect(id, "dev-a", "dev-a", {
        cleanStart: false,
        properties: { sessionExpiryInterval: 300 },
      });
      expect(owner.connack.reasonCode).toBe(0);
      owner.r.send({ type: "disconnect", reasonCode: 0 });
      await owner.r.closed;
      const other = await hmacConnect(id, "dev-b", "dev-b", { cleanStart: true });
      expect(other.connack.reasonCode).toBe(ReasonCode.NotAuthorized);
      const back = await hmacConnect(id, "dev-a", "dev-a", {
        cleanStart: false,
        properties: { sessionExpiryInterval: 300 },
      });
      expect(back.connack.sessionPresent).toBe(true);
    });
  });

  describe("bounded work before CONNECT", () => {
    it("one frame of 100,000 PINGREQs before CONNECT closes only that socket; a neighbour's QoS 1 round trips carry on (each under 1 s)", async () => {
      const neighbour = await mqttjs(5, "bob");
      const topic = `users/bob/${unique("rtt")}`;
      const inbox = new Inbox(neighbour);
      await neighbour.subscribeAsync(topic, { qos: 1 });
      const flooder = await raw(4);
      flooder.send(new Uint8Array(200_000).map((_, i) => (i % 2 === 0 ? 0xc0 : 0)));
      const rtts: number[] = [];
      for (let i = 0; i < 20; i++) {
        const start = performance.now();
        await neighbour.publishAsync(topic, String(i), { qos: 1 });
        await inbox.waitFor(i + 1);
        rtts.push(performance.now() - start);
      }
      const closed = await flooder.closed;
      expect(closed.code).toBe(1002);
      expect(flooder.drain()).toEqual([]);
      // A round trip takes 2 to 20 ms on this 2-core machine, even with other suites
      // running; the bound leaves room for a busy moment. How fast it is belongs in
      // the benchmark; this checks that the flood holds the neighbour up for no
      // noticeable time.
      expect(Math.max(...rtts)).toBeLessThan(1_000);
    });

    it("more than one packet's worth of bytes before CONNACK closes the socket without a CONNACK", async () => {
      const r = await raw(4);
      const frame = connectThenPings(unique("big"), 600_000);
      r.send(frame);
      // 0x96 Message rate too high, a bound passed: 1008 Policy Violation
      // (broker/protocol/close.ts closeCodeOf); MAX_PACKET_SIZE is its default here.
      expect(await r.closed).toEqual({
        code: 1008,
        reason: `more than ${2 ** 20} bytes received and not yet handled`,
      });
      expect(r.drain()).toEqual([]);
    });

    it("a CONNECT followed by other packets in the same frame is still served in order (MQTT 3.1.4 lets clients pipeline)", async () => {
      const r = await raw(4);
      r.send(connectThenPings(unique("pipe"), 1_000));
      expect((await r.next("connack")).reasonCode).toBe(0);
      for (let i = 0; i < 1_000; i++) await r.next("pingresp");
    });
  });

  // Last in this layout: it restarts the broker.
  it("a stored session is restored only as far as the ACL allows now", async () => {
    const id = unique("revoked");
    const { r: dev } = await connectAs(5, id, "alice", { cleanStart: false, ...expiryFor(5) });
    expect((await dev.subscribe(`devices/${id}/#`, 1, 1)).reasonCodes).toEqual([1]);
    expect((await dev.subscribe(`users/alice/${id}/#`, 1, 2)).reasonCodes).toEqual([1]);
    // A shared subscription is judged by the filter inside it, before and after.
    expect((await dev.subscribe(`$share/g/users/alice/${id}/shared`, 1, 3)).reasonCodes).toEqual([1]);
    dev.send({ type: "disconnect", reasonCode: 0 });
    await dev.closed;
    const api = (topic: string, payload: string) =>
      fetch(`${broker.httpUrl}/api/publish`, {
        method: "POST",
        headers: { Authorization: "Bearer identity-api-token" },
        body: JSON.stringify({ topic, payload, qos: 1 }),
      });
    expect((await api(`devices/${id}/queued`, "before the change")).status).toBe(200);

    // The operator takes devices/%c/# away from everyone and restarts.
    await broker.stop();
    vars = {
      ...vars,
      ACL: JSON.stringify([{ user: "*", publish: ["users/%u/#"], subscribe: ["users/%u/#"] }]),
    };
    broker = await startBroker({ vars, persistTo: broker.persistTo });
    url = broker.url;

    const { r: back, connack } = await connectAs(5, id, "alice", { cleanStart: false, ...expiryFor(5) });
    expect(connack.sessionPresent).toBe(true);
    expect((await api(`devices/${id}/live`, "after the change")).status).toBe(200);
    expect((await api(`users/alice/${id}/marker`, "marker")).status).toBe(200);
    const got = await back.next("publish");
    expect(got.topic).toBe(`users/alice/${id}/marker`);
    expect(back.drain().filter((p) => p.type === "publish")).toEqual([]);
    // What the session holds now: the shared subscription kept (judged by its inner filter).
    const res = await fetch(`${broker.httpUrl}/api/clients/${encodeURIComponent(id)}`, {
      headers: { Authorization: "Bearer identity-api-token" },
    });
    const info = (await res.json()) as { subscriptions: string[]; owner: string };
    expect(info.subscriptions.sort()).toEqual([`$share/g/users/alice/${id}/shared`, `users/alice/${id}/#`]);
    expect(info.owner).toBe("user:alice");
  }, 120_000);
});
