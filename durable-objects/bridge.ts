/**
 * Bridge: one per entry of BRIDGES (broker/bridges.ts), named after it. It
 * connects out to another MQTT broker over TCP (`cloudflare:sockets`, TLS on or
 * off) and speaks MQTT 5.0 there (3.1.1 with `protocolVersion: 4`) with a session
 * that outlives the connection, so the remote broker queues QoS 1 for it while it
 * is away:
 *
 * - in: it subscribes there and publishes each message here, through the topic's
 *   shard, acknowledging a QoS 1 message to the remote broker only once the shard
 *   has it (as a publisher's PUBACK here means);
 * - out: it is a destination at the shards (`b:<name>`) for its local filters;
 *   what they deliver waits in its storage (BRIDGE_QUEUE_BYTES) until the remote
 *   broker has acknowledged it (QoS 1) or it was written to the socket (QoS 0);
 * - a topic bridged both ways does not loop: a message it published here is not
 *   sent back out (it carries the bridge as its origin), and in 5.0 its
 *   subscriptions there are No Local (3.8.3.1), so the remote broker does not
 *   send back what the bridge published there (3.1.1 has no such option: a topic
 *   bridged both ways then comes back once);
 * - it reconnects after 1 s, 2 s, 4 s … up to a minute; its storage alarm, every
 *   minute (a row written each: about $0.04 a month), brings it back after an
 *   eviction or a deploy.
 *
 * While connected it stays awake (a socket has to be read, and pings sent): it is
 * billed for its duration (README, Integrations).
 */
import { connect } from "cloudflare:sockets";

import { DurableObject } from "cloudflare:workers";

import { BridgeInput } from "../broker/bridge-input.ts";

import { type BridgeConfig, type BridgeTopic, mapTopic } from "../broker/bridges.ts";

import { RESERVED_CLIENT_ID_PREFIX } from "../broker/client-ids.ts";

import { type BrokerConfig, readConfig } from "../broker/config.ts";

import { log, setLogLevel } from "../broker/log.ts";

import { type Message, newMessageId } from "../broker/message.ts";

import { type Migration, migrate } from "../broker/migrations.ts";

import { shardOf } from "../broker/routing.ts";

import { encode, type Packet, topicMatches } from "../mqtt/index.ts";

import type { Env } from "../worker/env.ts";
import type { BridgeRpc, BridgeState, BridgeStatus } from "./contracts.ts";
import { registerAtShards, unregisterAtShards } from "./registration.ts";
import { shardStub } from "./stubs.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registered (filter TEXT PRIMARY KEY);
`;
export const BRIDGE_MIGRATIONS: readonly Migration[] = [
  { to: 1, about: "baseline: messages waiting for the remote broker, local filters registered", sql: SCHEMA },
];

/** Messages waiting for the remote broker, in bytes of payload; past it, new ones are dropped and counted. */
export const BRIDGE_QUEUE_BYTES = 16 * 2 ** 20;
/** QoS 1 messages out to the remote broker and not yet acknowledged. */
const INFLIGHT = 20;
const FIRST_RETRY_MS = 1_000;
const LAST_RETRY_MS = 60_000;
/** The watchdog: while the bridge runs, its alarm is never further away than this. */
const WATCHDOG_MS = 60_000;

export class Bridge extends DurableObject<Env> implements BridgeRpc {
  private readonly config: BrokerConfig;
  private readonly bridge: BridgeConfig | undefined;
  private state: BridgeState = "stopped";
  private writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  private socket: Socket | undefined;
  private running: Promise<void> | undefined;
  private retryMs = FIRST_RETRY_MS;
  private nextPacketId = 1;
  /** packet id → outbox row, for QoS 1 messages sent and not acknowledged. */
  private readonly inflight = new Map<number, number>();
  /** The highest outbox row written to the socket on this connection. */
  private sentThrough = 0;
  private queuedBytes = 0;
  private readonly counts = {
    messagesIn: 0,
    messagesOut: 0,
    dropped: 0,
    refused: 0,
    badInput: 0,
    connects: 0,
  };
  private lastError: string | null = null;
  private pinger: ReturnType<typeof setInterval> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage.sql, "Bridge", BRIDGE_MIGRATIONS);
    this.config = readConfig(env);
    setLogLevel(env.LOG_LEVEL);
    this.bridge = this.config.bridges.find((b) => b.name === ctx.id.name);
    this.queuedBytes =
      ctx.storage.sql.exec<{ n: number | null }>("SELECT SUM(LENGTH(payload)) AS n FROM outbox").one().n ?? 0;
  }

  /** Starts the bridge if it is not running (the API, the console, a cron trigger, the alarm). */
  async start(): Promise<BridgeStatus> {
    if (this.bridge === undefined) throw new Error(`no bridge ${this.ctx.id.name} in BRIDGES`);
    await this.registerLocal(this.bridge);
    if (this.running === undefined) {
      if ((await this.ctx.storage.getAlarm()) === null)
        await this.ctx.storage.setAlarm(Date.now() + WATCHDOG_MS);
      this.running = this.run(this.bridge);
      this.ctx.waitUntil(this.running);
    }
    return this.status();
  }

  status(): BridgeStatus {
    const b = this.bridge;
    return {
      name: this.ctx.id.name ?? "?",
      state: this.state,
      remote: b === undefined ? "" : `${b.tls ? "mqtts" : "mqtt"}://${b.host}:${b.port}`,
      ...this.counts,
      queued: this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n,
      lastError: this.lastError,
    };
  }

  /** From the shards: local messages on the bridge's out filters. Resolves once they are stored. */
  async deliver(messages: Message[]): Promise<void> {
    const b = this.bridge;
    if (b === undefined) return;
    for (const m of messages) {
      if (m.origin === this.origin) continue; // it came in over this bridge
      const out = b.topics.find(
        (t) => t.direction !== "in" && topicMatches(`${t.localPrefix}${t.pattern}`, m.topic),
      );
      const topic = out === undefined ? undefined : mapTopic(m.topic, out.localPrefix, out.remotePrefix);
      if (out === undefined || topic === undefined) continue;
      if (this.queuedBytes + m.payload.byteLength > BRIDGE_QUEUE_BYTES) {
        this.counts.dropped++;
        continue;
      }
      this.ctx.storage.sql.exec(
        "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
        topic,
        m.payload,
        Math.min(m.qos, out.qos),
        m.retain ? 1 : 0,
      );
      this.queuedBytes += m.payload.byteLength;
    }
    this.pump();
    if (this.running === undefined) void this.start();
  }

  /** The watchdog: re-armed every time, so that an evicted or redeployed bridge comes back. */
  override async alarm(): Promise<void> {
    if (this.bridge === undefined) return;
    await this.ctx.storage.setAlarm(Date.now() + WATCHDOG_MS);
    await this.start();
  }

  /** Its messages' origin: a client id no client may take (client-ids.ts). */
  private get origin(): string {
    return `${RESERVED_CLIENT_ID_PREFIX}${this.ctx.id.name}`;
  }

  /** Registers the local side of `out` topics at the shards, once each (routes count subscriptions). */
  private async registerLocal(b: BridgeConfig): Promise<void> {
    const want = b.topics.filter((t) => t.direction !== "in").map((t) => `${t.localPrefix}${t.pattern}`);
    const have = this.ctx.storage.sql
      .exec<{ filter: string }>("SELECT filter FROM registered")
      .toArray()
      .map((r) => r.filter);
    const add = want.filter((f) => !have.includes(f));
    const remove = have.filter((f) => !want.includes(f));
    if (add.length === 0 && remove.length === 0) return;
    const shard = (i: number) => shardStub(this.env, i);
    const destination = `b:${this.ctx.id.name}` as const;
    if (add.length > 0) await registerAtShards(shard, this.config, destination, this.origin, add);
    if (remove.length > 0) await unregisterAtShards(shard, this.config, destination, this.origin, remove);
    for (const f of add) this.ctx.storage.sql.exec("INSERT OR IGNORE INTO registered (filter) VALUES (?)", f);
    for (const f of remove) this.ctx.storage.sql.exec("DELETE FROM registered WHERE filter = ?", f);
  }

  /** Connects, serves the connection until it ends, waits, and again: for as long as the object lives. */
  private async run(b: BridgeConfig): Promise<void> {
    for (;;) {
      try {
        await this.serve(b);
      } catch (err) {
        this.lastError = String(err);
        log("warn", "bridge_disconnected", { bridge: b.name, error: this.lastError });
      }
      this.close();
      this.state = "waiting";
      await new Promise((r) => setTimeout(r, this.retryMs));
      this.retryMs = Math.min(LAST_RETRY_MS, this.retryMs * 2);
    }
  }

  /** One connection: CONNECT, SUBSCRIBE, then packets both ways until the socket ends. */
  private async serve(b: BridgeConfig): Promise<void> {
    this.state = "connecting";
    const socket = connect(
      { hostname: b.host, port: b.port },
      { secureTransport: b.tls ? "on" : "off", allowHalfOpen: false },
    );
    this.socket = socket;
    await socket.opened;
    this.writer = socket.writable.getWriter();
    const password =
      b.passwordSecret === undefined ? undefined : String(Reflect.get(this.env, b.passwordSecret) ?? "");
    this.write({
      type: "connect",
      protocolVersion: b.protocolVersion,
      protocolName: "MQTT",
      clientId: b.clientId,
      cleanStart: false,
      keepAlive: b.keepAlive,
      // 5.0: the remote broker keeps the bridge's session (and QoS 1 for it) a week, and
      // sends no packet past MAX_PACKET_SIZE: it discards a larger message as if sent
      // (MQTT-3.1.2-24, -25), rather than the bridge ending the connection at it again and again.
      ...(b.protocolVersion === 5
        ? {
            properties: {
              sessionExpiryInterval: 7 * 24 * 3600,
              maximumPacketSize: this.config.maxPacketSize,
            },
          }
        : {}),
      ...(b.username === undefined ? {} : { username: b.username }),
      ...(password === undefined ? {} : { password: new TextEncoder().encode(password) }),
    });
    // Bounded by MAX_PACKET_SIZE: a header announcing more ends the connection unbuffered.
    const input = new BridgeInput(this.config, b);
    const reader = socket.readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the remote broker closed the connection");
      const { packets, error } = input.push(value);
      for (const p of packets) await this.handle(b, input, p);
      if (error !== undefined) {
        this.counts.badInput++;
        throw new Error(`the remote broker sent bad bytes: ${error}`);
      }
    }
  }

  private async handle(b: BridgeConfig, input: BridgeInput, p: Packet): Promise<void> {
    switch (p.type) {
      case "connack": {
        if (p.reasonCode !== 0)
          throw new Error(`the remote broker refused the connection (code ${p.reasonCode})`);
        this.state = "connected";
        this.counts.connects++;
        this.retryMs = FIRST_RETRY_MS;
        this.lastError = null;
        log("info", "bridge_connected", { bridge: b.name, sessionPresent: p.sessionPresent });
        const incoming = b.topics.filter((t) => t.direction !== "out");
        if (incoming.length > 0) {
          this.write({
            type: "subscribe",
            packetId: this.packetId(),
            subscriptions: incoming.map((t) => ({
              topicFilter: `${t.remotePrefix}${t.pattern}`,
              qos: t.qos,
              noLocal: b.protocolVersion === 5,
              retainAsPublished: false,
              retainHandling: 0,
            })),
          });
        }
        // One pinger per connection: a CONNACK again (a remote broker's mistake) replaces it.
        this.stopPinger();
        this.pinger = setInterval(() => this.write({ type: "pingreq" }), (b.keepAlive * 1000) / 2);
        this.pump();
        return;
      }
      case "publish": {
        const inbound = input.inbound(p);
        if (inbound.ok) await this.publishHere(inbound.line, inbound.topic, p);
        else if (inbound.problem !== null) {
          // Dropped and counted, and acknowledged: sent again, it would be refused again.
          this.counts.refused++;
          log("warn", "bridge_message_refused", {
            bridge: b.name,
            topic: JSON.stringify(p.topic.slice(0, 200)),
            reason: inbound.problem,
          });
        }
        // MQTT-4.3.2: acknowledged once it is ours (a message no line takes is acknowledged too).
        if (p.qos === 1) this.write({ type: "puback", packetId: p.packetId as number, reasonCode: 0 });
        if (p.qos === 2) this.write({ type: "pubrec", packetId: p.packetId as number, reasonCode: 0 });
        return;
      }
      case "pubrel":
        this.write({ type: "pubcomp", packetId: p.packetId, reasonCode: 0 });
        return;
      case "puback": {
        const row = this.inflight.get(p.packetId);
        if (row === undefined) return;
        this.inflight.delete(p.packetId);
        this.forget([row]);
        this.pump();
        return;
      }
      default:
        return;
    }
  }

  private async publishHere(
    line: BridgeTopic,
    topic: string,
    p: Extract<Packet, { type: "publish" }>,
  ): Promise<void> {
    const message: Message = {
      id: newMessageId(this.origin),
      topic,
      payload: p.payload.slice(),
      qos: Math.min(p.qos, line.qos) as 0 | 1,
      retain: p.retain,
      origin: this.origin,
    };
    await shardStub(this.env, shardOf(topic, this.config.layout)).publish([message]);
    this.counts.messagesIn++;
  }

  /** Sends what waits, in order, up to INFLIGHT unacknowledged QoS 1 messages. */
  private pump(): void {
    if (this.state !== "connected") return;
    const rows = this.ctx.storage.sql
      .exec<{ id: number; topic: string; payload: ArrayBuffer; qos: number; retain: number }>(
        "SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
        this.sentThrough,
        INFLIGHT,
      )
      .toArray();
    const sentQos0: number[] = [];
    for (const r of rows) {
      if (r.qos === 1 && this.inflight.size >= INFLIGHT) break;
      const common = {
        type: "publish",
        topic: r.topic,
        payload: new Uint8Array(r.payload),
        retain: r.retain === 1,
        dup: false,
      } as const;
      if (r.qos === 1) {
        const packetId = this.packetId();
        this.write({ ...common, qos: 1, packetId });
        this.inflight.set(packetId, r.id);
      } else {
        this.write({ ...common, qos: 0 });
        sentQos0.push(r.id);
      }
      this.sentThrough = r.id;
      this.counts.messagesOut++;
    }
    this.forget(sentQos0);
  }

  private forget(ids: number[]): void {
    for (const id of ids) {
      const row = this.ctx.storage.sql
        .exec<{ n: number }>("SELECT LENGTH(payload) AS n FROM outbox WHERE id = ?", id)
        .toArray()[0];
      if (row === undefined) continue;
      this.queuedBytes -= row.n;
      this.ctx.storage.sql.exec("DELETE FROM outbox WHERE id = ?", id);
    }
  }

  private write(p: Packet): void {
    const version = this.bridge?.protocolVersion ?? 5;
    void this.writer?.write(encode(p, version)).catch(() => undefined);
  }

  private packetId(): number {
    const id = this.nextPacketId;
    this.nextPacketId = id === 0xffff ? 1 : id + 1;
    return id;
  }

  /** Ends the connection's state: what was in flight goes again on the next one, in order. */
  private stopPinger(): void {
    if (this.pinger !== undefined) clearInterval(this.pinger);
    this.pinger = undefined;
  }

  private close(): void {
    this.stopPinger();
    this.inflight.clear();
    this.sentThrough = 0;
    this.writer = undefined;
    void this.socket?.close().catch(() => undefined);
    this.socket = undefined;
  }
}
