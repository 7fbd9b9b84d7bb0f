/**
 * A lean MQTT client for load generation: raw `ws` and the Nimbus codec, so that
 * the client is not the bottleneck. Acknowledges QoS 1/2 at once, counts what it
 * receives, and resolves publishes on their PUBACK.
 */
import { type Socket, connect as tcpConnect } from "node:net";
import WebSocket from "ws";

/** A byte pipe to the broker: WebSocket (ws://) or plain TCP (mqtt://). */
interface Transport {
  send(bytes: Uint8Array): void;
  close(): void;
  readonly buffered: number;
}

import { encode, type Packet, type ProtocolVersion, type QoS, StreamDecoder } from "../../mqtt/index.ts";

export interface Received {
  topic: string;
  payload: Uint8Array;
  at: number;
}

export class LoadClient {
  private readonly transport: Transport;
  private readonly decoder: StreamDecoder;
  private nextId = 1;
  private readonly acks = new Map<number, () => void>();
  private waiting: Array<{ type: string; resolve: (p: Packet) => void }> = [];
  received = 0;
  /** CONNACK's Session Present: the broker kept this client id's session. */
  sessionPresent = false;
  onMessage: ((m: Received) => void) | undefined;
  readonly closed: Promise<void>;

  private constructor(transport: Transport, closed: Promise<void>, version: ProtocolVersion) {
    this.transport = transport;
    this.decoder = new StreamDecoder({ version });
    this.closed = closed;
  }

  private receive(data: Uint8Array): void {
    const { packets } = this.decoder.push(data);
    for (const p of packets) this.handle(p);
  }

  static open(url: string, version: ProtocolVersion = 4): Promise<LoadClient> {
    if (url.startsWith("mqtt://")) {
      const { hostname, port } = new URL(url);
      const socket: Socket = tcpConnect(Number(port), hostname);
      socket.setNoDelay(true);
      return new Promise((resolve, reject) => {
        socket.once("connect", () => {
          const transport: Transport = {
            send: (b) => socket.write(b),
            close: () => socket.end(),
            get buffered() {
              return socket.writableLength;
            },
          };
          const c = new LoadClient(transport, new Promise((r) => socket.once("close", () => r())), version);
          socket.on("data", (d: Buffer) => c.receive(new Uint8Array(d)));
          // A reset (the broker restarting) ends in "close"; without a listener it would throw.
          socket.on("error", () => {});
          resolve(c);
        });
        socket.once("error", reject);
      });
    }
    const ws = new WebSocket(url, "mqtt", { perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once("open", () => {
        const transport: Transport = {
          send: (b) => ws.send(b),
          close: () => ws.close(),
          get buffered() {
            return ws.bufferedAmount;
          },
        };
        const c = new LoadClient(transport, new Promise((r) => ws.once("close", () => r())), version);
        ws.on("message", (d: Buffer) => c.receive(new Uint8Array(d)));
        // A reset (the broker restarting) ends in "close"; without a listener it would throw.
        ws.on("error", () => {});
        resolve(c);
      });
      ws.once("error", reject);
    });
  }

  static async connect(
    url: string,
    clientId: string,
    options: {
      clean?: boolean;
      version?: ProtocolVersion;
      /** 5.0 Session Expiry Interval, seconds (a persistent 5.0 session needs one). */
      expiry?: number;
      username?: string;
      password?: string;
    } = {},
  ) {
    const version = options.version ?? 4;
    const c = await LoadClient.open(url, version);
    c.send({
      type: "connect",
      protocolVersion: version,
      protocolName: "MQTT",
      clientId,
      cleanStart: options.clean ?? true,
      keepAlive: 120,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: new TextEncoder().encode(options.password) }),
      ...(options.expiry === undefined ? {} : { properties: { sessionExpiryInterval: options.expiry } }),
    });
    const connack = (await c.next("connack")) as Extract<Packet, { type: "connack" }>;
    if (connack.reasonCode !== 0) throw new Error(`CONNACK ${connack.reasonCode}`);
    c.sessionPresent = connack.sessionPresent;
    return c;
  }

  private handle(p: Packet): void {
    if (p.type === "publish") {
      this.received++;
      this.onMessage?.({ topic: p.topic, payload: p.payload, at: performance.now() });
      if (p.qos === 1) this.send({ type: "puback", packetId: p.packetId });
      else if (p.qos === 2) this.send({ type: "pubrec", packetId: p.packetId });
      return;
    }
    if (p.type === "pubrel") {
      this.send({ type: "pubcomp", packetId: p.packetId });
      return;
    }
    if (p.type === "puback" || p.type === "pubcomp") {
      this.acks.get(p.packetId)?.();
      this.acks.delete(p.packetId);
      return;
    }
    if (p.type === "pubrec") {
      this.send({ type: "pubrel", packetId: p.packetId });
      return;
    }
    const i = this.waiting.findIndex((w) => w.type === p.type);
    if (i >= 0) this.waiting.splice(i, 1)[0]?.resolve(p);
  }

  send(p: Packet): void {
    this.transport.send(encode(p, this.decoder.version));
  }

  next(type: string, timeoutMs = 30_000): Promise<Packet> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} in ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push({
        type,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
      });
    });
  }

  async subscribe(filter: string, qos: QoS): Promise<void> {
    await this.subscribeMany([filter], qos);
  }

  /** One SUBSCRIBE for every filter; resolves on its SUBACK. */
  async subscribeMany(filters: string[], qos: QoS): Promise<void> {
    this.send({
      type: "subscribe",
      packetId: this.id(),
      subscriptions: filters.map((topicFilter) => ({
        topicFilter,
        qos,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      })),
    });
    await this.next("suback");
  }

  /** PINGREQ; resolves on PINGRESP. */
  async ping(): Promise<void> {
    this.send({ type: "pingreq" });
    await this.next("pingresp");
  }

  /** QoS 0 resolves at once; QoS 1 on PUBACK. */
  publish(topic: string, payload: Uint8Array, qos: 0 | 1, retain = false): Promise<void> {
    if (qos === 0) {
      this.send({ type: "publish", topic, payload, qos: 0, dup: false, retain });
      return Promise.resolve();
    }
    const packetId = this.id();
    return new Promise((resolve) => {
      this.acks.set(packetId, resolve);
      this.send({ type: "publish", topic, payload, qos, dup: false, retain, packetId });
    });
  }

  /** Bytes the socket has not yet handed to the kernel (back-pressure). */
  get buffered(): number {
    return this.transport.buffered;
  }

  private id(): number {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  close(): void {
    try {
      this.send({ type: "disconnect" });
    } catch {
      // closed
    }
    this.transport.close();
  }
}
