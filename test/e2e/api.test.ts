/** The HTTP API, /metrics and $SYS topics, against the running Worker. */
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, inject, it } from "vitest";
import type { BrokerStats } from "../../broker/stats.ts";
import { ReasonCode } from "../../mqtt/index.ts";
import { clientState } from "../support/broker.ts";
import { connect, Inbox, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const http = inject("brokerHttpUrl");
const vars = inject("brokerVars");
const auth = { Authorization: `Bearer ${vars.API_TOKEN}` };
const open: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function client(options: Parameters<typeof connect>[1] = {}) {
  const c = await connect(url, { protocolVersion: 5, clientId: unique("api"), ...options });
  open.push(c);
  return c;
}

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${http}${path}`, {
    ...init,
    headers: { ...auth, "content-type": "application/json", ...init.headers },
  });

describe("HTTP API", () => {
  it("needs the bearer token, and explains errors in JSON", async () => {
    const none = await fetch(`${http}/api/stats`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ status: 401, error: expect.any(String) });
    expect((await fetch(`${http}/api/stats`, { headers: { Authorization: "Bearer nope" } })).status).toBe(
      401,
    );
    expect((await api("/api/publish", { method: "POST", body: "{" })).status).toBe(400);
    expect(
      (await api("/api/publish", { method: "POST", body: JSON.stringify({ topic: "a/+" }) })).status,
    ).toBe(400);
    expect(
      (await api("/api/publish", { method: "POST", body: JSON.stringify({ topic: "$SYS/x" }) })).status,
    ).toBe(403);
    expect((await api("/api/nothing")).status).toBe(404);
  });

  it("POST /api/publish reaches MQTT subscribers, with 5.0 properties", async () => {
    const topic = unique("api/pub");
    const sub = await client();
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(topic, { qos: 1 });
    const res = await api("/api/publish", {
      method: "POST",
      body: JSON.stringify({
        topic,
        payload: "from http",
        qos: 1,
        properties: { contentType: "text/plain", userProperties: [["source", "api"]] },
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ topic, qos: 1, delivered: true });
    const [m] = await inbox.waitFor(1);
    expect(m?.payload).toBe("from http");
    expect(m?.packet.properties).toMatchObject({
      contentType: "text/plain",
      userProperties: { source: "api" },
    });
  });

  it("POST /api/publish refuses properties MQTT cannot carry with 400, before anything is stored", async () => {
    const topic = unique("api/badprops");
    const sub = await client();
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(topic, { qos: 1 });
    for (const properties of [
      { topicAlias: 1 },
      { userProperties: "not a list" },
      { userProperties: [["k", "v".repeat(70_000)]] },
      { correlationData: 42 },
      { responseTopic: "a/#" },
    ]) {
      const res = await api("/api/publish", {
        method: "POST",
        body: JSON.stringify({ topic, payload: "bad", qos: 1, properties }),
      });
      expect(res.status, JSON.stringify(properties).slice(0, 50)).toBe(400);
    }
    // A message whose PUBLISH would pass MAX_PACKET_SIZE (1 MiB here) with its user
    // properties, however small its payload; a payload declared UTF-8 that is not;
    // a field no message has (a rule's envelope is not a message).
    const heavy = Array.from({ length: 20 }, (_, i) => [`k${i}`, "v".repeat(60_000)]);
    for (const body of [
      { topic, payload: "small", qos: 1, properties: { userProperties: heavy } },
      { topic, payloadBase64: "/w==", qos: 1, properties: { payloadFormatIndicator: 1 } },
      { topic, payload: "x", qos: 1, clientId: "c", time: "2026-12-03T00:00:00Z" },
    ]) {
      const res = await api("/api/publish", { method: "POST", body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
    }
    // Correlation data travels as base64 and arrives as bytes.
    const res = await api("/api/publish", {
      method: "POST",
      body: JSON.stringify({ topic, payload: "good", qos: 1, properties: { correlationData: "aWQ=" } }),
    });
    expect(res.status).toBe(200);
    const [m] = await inbox.waitFor(1);
    expect(m?.payload).toBe("good");
    expect(Buffer.from(m?.packet.properties?.correlationData as Buffer).toString()).toBe("id");
  });

  it("GET /api/retained lists retained messages matching a filter", async () => {
    const base = unique("api/ret");
    for (const [t, v] of [
      ["a", "1"],
      ["b", "2"],
    ]) {
      const res = await api("/api/publish", {
        method: "POST",
        body: JSON.stringify({ topic: `${base}/${t}`, payload: v, qos: 1, retain: true }),
      });
      expect(res.status).toBe(200);
    }
    const res = await api(`/api/retained?filter=${encodeURIComponent(`${base}/#`)}`);
    expect(await res.json()).toEqual([
      { topic: `${base}/a`, qos: 1, payload: "1" },
      { topic: `${base}/b`, qos: 1, payload: "2" },
    ]);
  });

  it("GET and DELETE /api/clients/{id}", async () => {
    const clientId = unique("api-client");
    const topic = unique("api/t");
    const raw = await RawClient.open(url, 5);
    raw.sendConnect(clientId, { cleanStart: false, properties: { sessionExpiryInterval: 300 } });
    await raw.next("connack");
    await raw.subscribe(topic, 1);
    const online = await (await api(`/api/clients/${encodeURIComponent(clientId)}`)).json();
    expect(online).toMatchObject({
      clientId,
      online: true,
      gateway: expect.stringMatching(/^gateway-/),
      subscriptions: [topic],
    });

    raw.close();
    await raw.closed;
    await clientState(http, vars.API_TOKEN as string, clientId, ({ body }) => body?.online === false);
    await api("/api/publish", { method: "POST", body: JSON.stringify({ topic, payload: "queued", qos: 1 }) });
    const offline = await (await api(`/api/clients/${encodeURIComponent(clientId)}`)).json();
    expect(offline).toMatchObject({ online: false, queued: 1, subscriptions: [topic] });

    const back = await RawClient.open(url, 5);
    back.sendConnect(clientId, { cleanStart: false, properties: { sessionExpiryInterval: 300 } });
    await back.next("connack");
    const del = await api(`/api/clients/${encodeURIComponent(clientId)}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    // 5.0 DISCONNECT 0x98 Administrative action
    expect((await back.next("disconnect")).reasonCode).toBe(ReasonCode.AdministrativeAction);
    await clientState(http, vars.API_TOKEN as string, clientId, ({ status }) => status === 404);
  });

  it("GET and DELETE /api/clients/{id} for a clean session, which its registry holds", async () => {
    const clientId = unique("api-clean");
    const topic = unique("api/t");
    const raw = await RawClient.open(url, 5);
    await raw.connect(clientId, { cleanStart: true });
    await raw.subscribe(topic, 1);
    const online = await (await api(`/api/clients/${encodeURIComponent(clientId)}`)).json();
    expect(online).toMatchObject({ clientId, online: true, persistent: false, subscriptions: [topic] });
    const del = await api(`/api/clients/${encodeURIComponent(clientId)}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    expect((await raw.next("disconnect")).reasonCode).toBe(ReasonCode.AdministrativeAction);
    await raw.closed;
    expect((await api(`/api/clients/${encodeURIComponent(clientId)}`)).status).toBe(404);
  });

  it("GET and DELETE /api/clients/{id} take any client id as one percent-encoded segment, and refuse a malformed one with 400", async () => {
    // "/", "%", "?" and "#" are ordinary characters of a client id.
    const clientId = unique("a/b%c?d#e");
    await client({ clientId });
    const info = await api(`/api/clients/${encodeURIComponent(clientId)}`);
    expect(info.status).toBe(200);
    expect(await info.json()).toMatchObject({ clientId, online: true });
    // Not UTF-8 once decoded: the caller's mistake, not the broker's.
    for (const method of ["GET", "DELETE"]) {
      const bad = await api("/api/clients/%E0%A4%A", { method });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toEqual({
        error: "the client id is not well-formed percent-encoded UTF-8",
        status: 400,
      });
    }
  });

  it("GET /api/clients lists the connected clients of a prefix a page at a time, each once, and only connected ones", async () => {
    const prefix = unique("list");
    const ids = Array.from({ length: 7 }, (_, i) => `${prefix}/${i}`);
    for (const clientId of ids.slice(0, 6)) await client({ clientId });
    const persistent = await client({
      clientId: ids[6] as string,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    // Another prefix is not listed, nor is a client that left.
    await client({ clientId: `${prefix}x` });
    const gone = await client({ clientId: `${prefix}/gone` });
    await gone.endAsync();

    const seen: Array<{ clientId: string; owner: string; persistent: boolean; gateway: string }> = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query = new URLSearchParams({ prefix: `${prefix}/`, limit: "3" });
      if (cursor !== null) query.set("cursor", cursor);
      const res = await api(`/api/clients?${query}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { clients: typeof seen; next: string | null };
      expect(body.clients.length).toBeLessThanOrEqual(3);
      seen.push(...body.clients);
      cursor = body.next;
      pages++;
    } while (cursor !== null && pages < 100);
    expect(cursor).toBeNull();
    expect(seen.map((c) => c.clientId).sort()).toEqual([...ids].sort());
    expect(seen.every((c) => c.owner === "anonymous" && c.gateway.length > 0)).toBe(true);
    expect(seen.find((c) => c.clientId === ids[6])?.persistent).toBe(true);
    expect(seen.filter((c) => c.persistent)).toHaveLength(1);
    void persistent;
  });

  it("GET /api/clients refuses what no page of it could be: a limit past 100, a forged cursor, another prefix's cursor", async () => {
    for (const limit of ["0", "101", "1.5", "x"])
      expect((await api(`/api/clients?limit=${limit}`)).status).toBe(400);
    expect((await api(`/api/clients?prefix=${"a".repeat(1025)}`)).status).toBe(400);
    const forged = Buffer.from(JSON.stringify([1_000_000, null])).toString("base64url");
    for (const cursor of ["%%%", "bm90IGpzb24", forged])
      expect((await api(`/api/clients?cursor=${cursor}`)).status).toBe(400);
    // A cursor whose last id lies outside the prefix asked for is not one of this listing.
    const other = Buffer.from(JSON.stringify([0, "zzz"])).toString("base64url");
    expect((await api(`/api/clients?prefix=aaa&cursor=${other}`)).status).toBe(400);
    expect((await fetch(`${http}/api/clients`)).status).toBe(401);
    expect((await api("/api/clients", { method: "POST" })).status).toBe(405);
  });

  it("GET /api/stats counts per shard and gateway, and /metrics has the same in Prometheus text", async () => {
    const clientId = unique("api-stats");
    const c = await client({ clientId });
    await c.publishAsync(unique("api/stats"), "x", { qos: 1 });
    // The gateway that took the message (one of GATEWAYS, picked at random).
    const { gateway } = (await (await api(`/api/clients/${clientId}`)).json()) as { gateway: string };
    const stats = (await (await api("/api/stats")).json()) as BrokerStats;
    expect(stats.connections).toBeGreaterThanOrEqual(1);
    expect(stats.messagesIn).toBeGreaterThanOrEqual(1);
    expect(stats.gateways).toHaveLength(Number(vars.GATEWAYS));
    expect(stats.shards).toHaveLength(Number(vars.TOPIC_SHARDS));
    const metrics = await (await api("/metrics")).text();
    expect(metrics).toMatch(/^# TYPE nimbus_connections gauge$/m);
    expect(metrics).toMatch(
      new RegExp(`^nimbus_messages_received_total\\{gateway="${gateway}"\\} [1-9]\\d*$`, "m"),
    );
  });

  it("serves an OpenAPI document", async () => {
    const doc = (await (await fetch(`${http}/api/openapi.json`)).json()) as {
      openapi: string;
      paths: object;
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/api/publish",
        "/api/retained",
        "/api/clients/{id}",
        "/api/stats",
        "/api/bridges",
      ]),
    );
  });
});

describe("$SYS topics", () => {
  it("publishes broker numbers to $SYS subscribers at an interval", async () => {
    const c = await client();
    const inbox = new Inbox(c);
    await c.subscribeAsync("$SYS/broker/#", { qos: 0 });
    await inbox.waitFor(9);
    const topics = new Set(inbox.messages.map((m) => m.topic));
    for (const t of [
      "version",
      "uptime",
      "clients/connected",
      "messages/received",
      "messages/sent",
      "subscriptions/count",
    ]) {
      expect(topics).toContain(`$SYS/broker/${t}`);
    }
    expect(topics).toContain("$SYS/broker/retained messages/count");
    expect(
      Number(inbox.messages.find((m) => m.topic === "$SYS/broker/clients/connected")?.payload),
    ).toBeGreaterThanOrEqual(1);
    // and again after the interval (SYS_INTERVAL is 1 s here)
    await inbox.waitFor(18, 6_000);
  });
});
