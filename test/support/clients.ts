/** MQTT clients for end-to-end tests: MQTT.js, and a raw client built on our codec. */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import WebSocket from "ws";
import {
  type ConnectPacket,
  encode,
  type Packet,
  type ProtocolVersion,
  type PublishPacket,
  type QoS,
  StreamDecoder,
} from "../../mqtt/index.ts";
import { connectPacket } from "./packets.ts";

let counter = 0;

/** A topic prefix or client id no other test uses. */
export function unique(prefix: string): string {
  counter++;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** Connects MQTT.js and resolves on CONNACK; never reconnects by itself. */
export function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const limit = options.connectTimeout ?? 10_000;
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: limit, ...options });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no CONNACK within ${limit / 1000} s`)), limit);
    client.once("connect", () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    client.once("close", () => {
      clearTimeout(timer);
      reject(new Error("closed before CONNACK"));
    });
  });
}

export interface Received {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

/** Collects a client's messages; waits for them with a timeout. */
export class Inbox {
  readonly messages: Received[] = [];
  private waiters: Array<() => void> = [];

  constructor(client: MqttClient) {
    client.on("message", (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), packet });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves once `n` messages in all have arrived. */
  async waitFor(n: number, timeoutMs = 8_000): Promise<Received[]> {
    await this.waitUntil(() => this.messages.length >= n, `${n} messages`, timeoutMs);
    return this.messages.slice(0, n);
  }

  /** Resolves once `done` holds of the messages so far; `what` names it in the error. */
  async waitUntil(done: (messages: Received[]) => boolean, what: string, timeoutMs = 8_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.messages)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`expected ${what}, got ${this.messages.length}: ${JSON.stringify(this.summary())}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * What arrived before the message whose payload is `marker`, once the marker has
   * arrived (it is left out). This proves a negative where sleeping would only hope:
   * send the marker after what must not arrive, so that the broker's order puts it
   * behind (see `markerTopic`), and what came before it is all that will come.
   */
  async until(marker: string, timeoutMs = 8_000): Promise<Received[]> {
    const at = () => this.messages.findIndex((m) => m.payload === marker);
    await this.waitUntil(() => at() >= 0, `the marker ${JSON.stringify(marker)}`, timeoutMs);
    return this.messages.slice(0, at());
  }

  summary() {
    return this.messages.map((m) => ({
      topic: m.topic,
      payload: m.payload,
      qos: m.packet.qos,
      retain: m.packet.retain,
    }));
  }
}

/** The SUBACK codes for `filters`, failures included (MQTT.js rejects on those). */
export async function subackCodes(
  client: MqttClient,
  filters: string[],
  options: mqtt.IClientSubscribeOptions = { qos: 0 },
): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, options)).map((g) => g.qos);
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet;
    if (packet?.granted === undefined) throw err;
    return packet.granted;
  }
}

/**
 * A topic for a marker that follows messages to `topic`: the same first level, so
 * the same shard in every layout (SHARD_LEVELS is 1 in these tests). One
 * publisher's messages to one shard reach each subscriber in the order they were
 * published (4.6), so once the marker is in, whatever that publisher sent before
 * it to `topic` is in too, or was never sent.
 */
export function markerTopic(topic: string): string {
  return `${topic.split("/")[0]}/marker`;
}

/**
 * What a subscriber has received once the retained messages of its last
 * subscription are all in: a SUBACK is sent only after the retained messages of
 * the SUBSCRIBE before it (one packet is handled at a time), so a marker published
 * after a second SUBACK comes after them. `topic` names the marker's shard.
 */
export async function afterRetained(sub: MqttClient, inbox: Inbox, pub: MqttClient, topic: string) {
  await sub.subscribeAsync(markerTopic(topic), { qos: 1 });
  const marker = unique("marker");
  await pub.publishAsync(markerTopic(topic), marker, { qos: 1 });
  return inbox.until(marker);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function subscribe(
  client: MqttClient,
  topic: string | string[],
  options: mqtt.IClientSubscribeOptions = { qos: 0 },
) {
  return client.subscribeAsync(topic, options);
}

/** Ends a client without DISCONNECT: the broker sees the socket drop (a will is due). */
export function dropConnection(client: MqttClient): void {
  (client.stream as unknown as { destroy(): void }).destroy();
  client.end(true);
}

/**
 * A client that speaks raw packets through the Nimbus codec, for what MQTT.js
 * will not do: bad input, withheld acknowledgements, exact packet order.
 */
export class RawClient {
  readonly ws: WebSocket;
  private readonly decoder: StreamDecoder;
  private readonly inbox: Packet[] = [];
  private waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  isClosed = false;
  /** Every frame received, as bytes, for tests of the exact encoding. */
  readonly frames: Uint8Array[] = [];

  private constructor(ws: WebSocket, version: ProtocolVersion) {
    this.ws = ws;
    this.decoder = new StreamDecoder({ version });
    ws.on("message", (data: Buffer) => {
      this.frames.push(new Uint8Array(data));
      const { packets } = this.decoder.push(new Uint8Array(data));
      this.inbox.push(...packets);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.isClosed = true;
        for (const w of this.waiters.splice(0)) w();
        resolve({ code, reason: reason.toString() });
      });
    });
  }

  /** `headers` go with the upgrade request (CF-Connecting-IP, to stand for another address). */
  static open(
    url: string,
    version: ProtocolVersion = 4,
    protocol = "mqtt",
    headers: Record<string, string> = {},
  ): Promise<RawClient> {
    const ws = new WebSocket(url, protocol, { headers });
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(new RawClient(ws, version)));
      ws.once("error", reject);
    });
  }

  get version(): ProtocolVersion {
    return this.decoder.version;
  }

  send(packet: Packet | Uint8Array): void {
    this.ws.send(
      packet instanceof Uint8Array
        ? packet
        : encode(packet, packet.type === "connect" ? packet.protocolVersion : this.version),
    );
    if (!(packet instanceof Uint8Array) && packet.type === "connect")
      this.decoder.version = packet.protocolVersion;
  }

  /** Sends CONNECT: clean start, keep-alive 60, this client's version, unless `extra` says otherwise. */
  sendConnect(clientId: string, extra: Partial<ConnectPacket> = {}): void {
    this.send(connectPacket(clientId, this.version, extra));
  }

  /** CONNECT and wait for CONNACK. */
  async connect(
    clientId: string,
    options: { version?: ProtocolVersion; cleanStart?: boolean; keepAlive?: number; expiry?: number } = {},
  ) {
    const extra: Partial<ConnectPacket> = { protocolVersion: options.version ?? this.version };
    if (options.cleanStart !== undefined) extra.cleanStart = options.cleanStart;
    if (options.keepAlive !== undefined) extra.keepAlive = options.keepAlive;
    // 5.0: Session Expiry Interval, seconds (3.1.2.11.2).
    if (options.expiry !== undefined) extra.properties = { sessionExpiryInterval: options.expiry };
    this.sendConnect(clientId, extra);
    return this.next("connack");
  }

  /** SUBSCRIBE to one filter (default options) and wait for SUBACK. */
  subscribe(topicFilter: string, qos: QoS, packetId = 1) {
    this.send({
      type: "subscribe",
      packetId,
      subscriptions: [{ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    });
    return this.next("suback");
  }

  /** The next packet (of `type`, if given; others stay queued). */
  async next<T extends Packet["type"]>(type?: T, timeoutMs = 8_000): Promise<Extract<Packet, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((p) => type === undefined || p.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<Packet, { type: T }>;
      const left = deadline - Date.now();
      if (left <= 0 || this.isClosed) {
        throw new Error(
          `no ${type ?? "packet"} (closed: ${this.isClosed}, queued: ${this.inbox.map((p) => p.type)})`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * The PUBLISH packets that arrive before the one whose payload is `marker` (taken
   * with it, and left out); other packets stay queued. See Inbox.until.
   */
  async publishesUntil(marker: string, timeoutMs = 8_000): Promise<PublishPacket[]> {
    const before: PublishPacket[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.next("publish", Math.max(1, deadline - Date.now()));
      if (new TextDecoder().decode(p.payload) === marker) return before;
      before.push(p);
    }
  }

  /** Everything received so far and not yet taken. */
  drain(): Packet[] {
    return this.inbox.splice(0);
  }

  close(): void {
    this.ws.close();
  }

  terminate(): void {
    this.ws.terminate();
  }
}
