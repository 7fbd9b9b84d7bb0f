/**
 * WebSocket frames per MQTT packet, as each client library sends them: a tiny broker
 * on loopback (exact topics only, enough for a fleet's CONNECT, SUBSCRIBE, QoS 1
 * PUBLISH, PUBACK, DISCONNECT) that counts, for every packet it receives, the frames
 * that carried a part of it. On Cloudflare every frame is an incoming WebSocket
 * message: an event for the gateway, and 1/20 of a billed request.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { encode, type Packet, type ProtocolVersion, StreamDecoder } from "../../../mqtt/index.ts";

export type Counted = "connect" | "subscribe" | "publish" | "puback" | "pingreq" | "disconnect";
const COUNTED: Counted[] = ["connect", "subscribe", "publish", "puback", "pingreq", "disconnect"];

export interface FrameCounts {
  /** Per packet type: packets received and the frames each spanned, summed. */
  byType: Record<Counted, { packets: number; frames: number }>;
  /** Every frame and every packet received. */
  frames: number;
  packets: number;
}

const empty = (): FrameCounts => ({
  byType: Object.fromEntries(COUNTED.map((t) => [t, { packets: 0, frames: 0 }])) as FrameCounts["byType"],
  frames: 0,
  packets: 0,
});

interface Peer {
  ws: WebSocket;
  decoder: StreamDecoder;
  /** Frames that carried bytes of the packet not yet complete. */
  open: number;
  nextId: number;
}

export class FrameCounter {
  readonly url: string;
  private counts = empty();
  private readonly subscribers = new Map<string, Set<Peer>>();
  private readonly server: ReturnType<typeof createServer>;
  private readonly wss: WebSocketServer;

  private constructor(server: ReturnType<typeof createServer>, wss: WebSocketServer) {
    this.server = server;
    this.wss = wss;
    this.url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/mqtt`;
    wss.on("connection", (ws) => this.accept(ws));
  }

  static async start(): Promise<FrameCounter> {
    const server = createServer();
    const wss = new WebSocketServer({ server, perMessageDeflate: false, handleProtocols: () => "mqtt" });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new FrameCounter(server, wss);
  }

  /** What arrived since the last `take`. */
  peek(): FrameCounts {
    return this.counts;
  }

  /** What arrived since the last call. */
  take(): FrameCounts {
    const out = this.counts;
    this.counts = empty();
    return out;
  }

  private accept(ws: WebSocket): void {
    const peer: Peer = { ws, decoder: new StreamDecoder(), open: 0, nextId: 1 };
    ws.on("message", (data: Buffer) => this.frame(peer, new Uint8Array(data)));
    ws.on("close", () => {
      for (const set of this.subscribers.values()) set.delete(peer);
    });
  }

  private frame(peer: Peer, bytes: Uint8Array): void {
    this.counts.frames++;
    const partial = peer.decoder.buffered > 0;
    peer.decoder.feed(bytes);
    let first = true;
    for (let p = peer.decoder.next(); p !== undefined; p = peer.decoder.next()) {
      if ("ok" in p) {
        peer.ws.terminate();
        return;
      }
      // The first packet completed here began in the frames before it, if bytes were waiting.
      const spanned = first ? (partial ? peer.open : 0) + 1 : 1;
      first = false;
      this.counts.packets++;
      const row = this.counts.byType[p.type as Counted];
      if (row !== undefined) {
        row.packets++;
        row.frames += spanned;
      }
      this.handle(peer, p);
    }
    if (first) peer.open = (partial ? peer.open : 0) + 1;
    else peer.open = peer.decoder.buffered > 0 ? 1 : 0;
  }

  private send(peer: Peer, p: Packet): void {
    if (peer.ws.readyState === WebSocket.OPEN)
      peer.ws.send(encode(p, peer.decoder.version as ProtocolVersion));
  }

  private handle(peer: Peer, p: Packet): void {
    switch (p.type) {
      case "connect":
        this.send(peer, { type: "connack", sessionPresent: false, reasonCode: 0 });
        return;
      case "subscribe":
        for (const s of p.subscriptions) {
          const set = this.subscribers.get(s.topicFilter) ?? new Set();
          set.add(peer);
          this.subscribers.set(s.topicFilter, set);
        }
        this.send(peer, {
          type: "suback",
          packetId: p.packetId,
          reasonCodes: p.subscriptions.map((s) => s.qos),
        });
        return;
      case "publish":
        if (p.qos !== 0) this.send(peer, { type: "puback", packetId: p.packetId });
        for (const to of this.subscribers.get(p.topic) ?? []) {
          const packetId = to.nextId;
          to.nextId = packetId === 65535 ? 1 : packetId + 1;
          this.send(to, {
            type: "publish",
            topic: p.topic,
            payload: p.payload,
            qos: 1,
            dup: false,
            retain: false,
            packetId,
          });
        }
        return;
      case "pingreq":
        this.send(peer, { type: "pingresp" });
        return;
      case "disconnect":
        peer.ws.close();
        return;
      default:
        return;
    }
  }

  /** Drops every connection, as a broker going away does. */
  dropAll(): void {
    for (const ws of this.wss.clients) ws.terminate();
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
