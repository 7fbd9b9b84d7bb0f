/**
 * An MQTT client for tests inside workerd: a WebSocket fetched from the Worker
 * (SELF), speaking raw packets through the Nimbus codec.
 */
import { SELF } from "cloudflare:test";
import { expect } from "vitest";
import {
  type ConnectPacket,
  encode,
  type Packet,
  type ProtocolVersion,
  StreamDecoder,
} from "../../mqtt/index.ts";
import { connectPacket } from "./packets.ts";

export class TestClient {
  private readonly decoder: StreamDecoder;
  private readonly inbox: Packet[] = [];
  private wake: (() => void) | undefined;

  readonly ws: WebSocket;
  readonly version: ProtocolVersion;

  constructor(ws: WebSocket, version: ProtocolVersion) {
    this.ws = ws;
    this.version = version;
    this.decoder = new StreamDecoder({ version });
    // The client end of a fetch()ed WebSocket receives Blobs: read them in order.
    let chain = Promise.resolve();
    ws.addEventListener("message", (e) => {
      const data = e.data as Blob | ArrayBuffer;
      chain = chain.then(async () => {
        const bytes = new Uint8Array(data instanceof Blob ? await data.arrayBuffer() : data);
        this.inbox.push(...this.decoder.push(bytes).packets);
        this.wake?.();
      });
    });
  }

  static async open(version: ProtocolVersion): Promise<TestClient> {
    const res = await SELF.fetch("http://nimbus.test/mqtt", {
      headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt" },
    });
    const ws = res.webSocket;
    if (!ws) throw new Error(`no WebSocket: ${res.status}`);
    ws.accept();
    return new TestClient(ws, version);
  }

  /** A client that sent CONNECT (clean start) and got its CONNACK. */
  static async connected(
    clientId: string,
    version: ProtocolVersion,
    properties?: ConnectPacket["properties"],
  ): Promise<TestClient> {
    const c = await TestClient.open(version);
    c.send(connectPacket(clientId, version, properties === undefined ? {} : { properties }), version);
    expect((await c.next("connack")).reasonCode ?? 0).toBe(0);
    return c;
  }

  async subscribe(topicFilter: string): Promise<void> {
    const options = { qos: 1 as const, noLocal: false, retainAsPublished: false, retainHandling: 0 as const };
    this.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter, ...options }] }, this.version);
    await this.next("suback");
  }

  send(p: Packet, version: ProtocolVersion): void {
    this.ws.send(encode(p, version));
  }

  async next<T extends Packet["type"]>(type: T): Promise<Extract<Packet, { type: T }>> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const i = this.inbox.findIndex((p) => p.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<Packet, { type: T }>;
      if (Date.now() > deadline) throw new Error(`no ${type}; have ${this.inbox.map((p) => p.type)}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
  }
}
