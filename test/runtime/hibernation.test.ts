/**
 * Inside workerd: a Gateway's in-memory state is discarded mid-session (the object
 * is evicted, its WebSockets hibernated) and every connection carries on, because
 * what it needs lives in attachments and SQLite (DESIGN.md invariant 4).
 */
import { evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { encode, type Packet, type ProtocolVersion, StreamDecoder } from "../../mqtt/index.ts";
import type { Env } from "../../worker/env.ts";

class TestClient {
  private readonly decoder: StreamDecoder;
  private readonly inbox: Packet[] = [];
  private wake: (() => void) | undefined;

  readonly ws: WebSocket;

  constructor(ws: WebSocket, version: ProtocolVersion) {
    this.ws = ws;
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

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));

describe("Gateway eviction with hibernated WebSockets", () => {
  it("keeps every connection working after the object's memory is discarded", async () => {
    const sub = await TestClient.open(5);
    sub.send(
      {
        type: "connect",
        protocolVersion: 5,
        protocolName: "MQTT",
        clientId: "hib-sub",
        cleanStart: true,
        keepAlive: 60,
        properties: { sessionExpiryInterval: 300 },
      },
      5,
    );
    expect((await sub.next("connack")).reasonCode).toBe(0);
    sub.send(
      {
        type: "subscribe",
        packetId: 1,
        subscriptions: [
          { topicFilter: "hib/#", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        ],
      },
      5,
    );
    await sub.next("suback");

    const pub = await TestClient.open(4);
    pub.send(
      {
        type: "connect",
        protocolVersion: 4,
        protocolName: "MQTT",
        clientId: "hib-pub",
        cleanStart: true,
        keepAlive: 60,
      },
      4,
    );
    await pub.next("connack");

    // Mark the live instance, then evict it: a new instance must not carry the mark.
    await runInDurableObject(gateway(), (instance) => {
      (instance as unknown as { marker?: string }).marker = "before";
    });
    await evictDurableObject(gateway(), { webSockets: "hibernate" });

    const payload = new TextEncoder().encode("after eviction");
    pub.send({ type: "publish", topic: "hib/a", payload, qos: 1, dup: false, retain: false, packetId: 9 }, 4);
    expect(await pub.next("puback")).toEqual({ type: "puback", packetId: 9 });
    const got = await sub.next("publish");
    expect(new TextDecoder().decode(got.payload)).toBe("after eviction");
    expect(got.qos).toBe(1);
    sub.send({ type: "puback", packetId: got.packetId as number }, 5);

    const marker = await runInDurableObject(
      gateway(),
      (instance) => (instance as unknown as { marker?: string }).marker,
    );
    expect(marker).toBeUndefined();

    // The connections' protocol state survived: ping and a second CONNECT rule.
    sub.send({ type: "pingreq" }, 5);
    await sub.next("pingresp");
    await evictDurableObject(gateway(), { webSockets: "hibernate" });
    pub.send(
      {
        type: "connect",
        protocolVersion: 4,
        protocolName: "MQTT",
        clientId: "hib-pub",
        cleanStart: true,
        keepAlive: 60,
      },
      4,
    );
    // MQTT-3.1.0-2: still known as connected after eviction, so a second CONNECT closes it.
    await new Promise<void>((resolve) => pub.ws.addEventListener("close", () => resolve()));
    sub.ws.close();
  });
});

describe("Gateway drain", () => {
  it("disconnects every client with DISCONNECT 0x8B Server shutting down", async () => {
    const a = await TestClient.open(5);
    a.send(
      {
        type: "connect",
        protocolVersion: 5,
        protocolName: "MQTT",
        clientId: "drain-a",
        cleanStart: true,
        keepAlive: 60,
      },
      5,
    );
    await a.next("connack");
    const closed = new Promise<void>((resolve) => a.ws.addEventListener("close", () => resolve()));
    const stub = gateway() as unknown as { drain(code?: number): Promise<number> };
    expect(await stub.drain()).toBeGreaterThanOrEqual(1);
    expect((await a.next("disconnect")).reasonCode).toBe(0x8b);
    await closed;
  });
});
