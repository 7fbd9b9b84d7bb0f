/**
 * The overload benchmark's flooders: raw MQTT 5.0 clients writing frames of
 * PUBLISH packets as fast as their sockets take them. They run in a thread of
 * their own (floodInThread), so that the event loop they keep busy is not the one
 * of the clients the benchmark times: a fresh client's round trip, the reader's
 * acknowledgements and the well-behaved publisher measure the broker, not how
 * late the benchmark's own process got to their frames.
 */
import WebSocket from "ws";
import { encode, StreamDecoder } from "../../mqtt/index.ts";
import { runInThread, serveInThread } from "./thread.ts";

/** Each flood frame holds this many PUBLISH packets of FLOOD_PAYLOAD bytes. */
export const PER_FRAME = 50;
export const FLOOD_PAYLOAD = 100;

export interface Flooder {
  url: string;
  id: string;
  topic: string;
  qos: 0 | 1;
  /** Date.now() when it stops. */
  until: number;
}

export interface FloodEnd {
  sent: number;
  /** The DISCONNECT reason code the broker sent, if it sent one; "open" if the socket was still open at the end. */
  end: string;
}

/** One flooder: a raw MQTT 5.0 client writing frames of PUBLISH packets while its socket takes them. */
async function flood({ url, id, topic, qos, until }: Flooder): Promise<FloodEnd> {
  const ws = new WebSocket(url, "mqtt", { perMessageDeflate: false });
  const decoder = new StreamDecoder({ version: 5 });
  let disconnect: number | undefined;
  let closed = false;
  const connack = new Promise<void>((resolve, reject) => {
    ws.on("message", (data: Buffer) => {
      for (const p of decoder.push(new Uint8Array(data)).packets) {
        if (p.type === "connack") resolve();
        if (p.type === "disconnect") disconnect = p.reasonCode ?? 0;
      }
    });
    ws.once("close", () => {
      closed = true;
      reject(new Error("closed before CONNACK"));
    });
    ws.once("error", () => {});
  });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  ws.send(
    encode(
      {
        type: "connect",
        protocolVersion: 5,
        protocolName: "MQTT",
        clientId: id,
        cleanStart: true,
        keepAlive: 60,
      },
      5,
    ),
  );
  await connack;
  // One PUBLISH encoded once; QoS 1 copies get their packet identifiers written in place.
  const one =
    qos === 0
      ? encode(
          {
            type: "publish",
            topic,
            qos: 0,
            dup: false,
            retain: false,
            payload: new Uint8Array(FLOOD_PAYLOAD),
          },
          5,
        )
      : encode(
          {
            type: "publish",
            topic,
            qos: 1,
            dup: false,
            retain: false,
            packetId: 1,
            payload: new Uint8Array(FLOOD_PAYLOAD),
          },
          5,
        );
  // The packet identifier follows the fixed header (type byte, Remaining Length) and the topic.
  let idAt = 1;
  while (((one[idAt] as number) & 0x80) !== 0) idAt++;
  idAt += 1 + 2 + new TextEncoder().encode(topic).length;
  let nextId = 1;
  let sent = 0;
  while (Date.now() < until && !closed && ws.readyState === WebSocket.OPEN) {
    if (ws.bufferedAmount < 256 * 1024) {
      const frame = new Uint8Array(one.length * PER_FRAME);
      for (let i = 0; i < PER_FRAME; i++) {
        frame.set(one, i * one.length);
        if (qos === 1) {
          frame[i * one.length + idAt] = nextId >> 8;
          frame[i * one.length + idAt + 1] = nextId & 0xff;
          nextId = nextId === 65535 ? 1 : nextId + 1;
        }
      }
      ws.send(frame);
      sent += PER_FRAME;
      if (sent % 5_000 === 0) await new Promise((r) => setImmediate(r));
    } else {
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  const end =
    disconnect !== undefined ? `0x${disconnect.toString(16).padStart(2, "0")}` : closed ? "closed" : "open";
  ws.terminate();
  return { sent, end };
}

/** Runs `flooders` in a thread of their own; each one's end, in order. */
export function floodInThread(flooders: Flooder[]): Promise<FloodEnd[]> {
  return runInThread(import.meta.filename, flooders);
}

serveInThread((flooders: Flooder[]) => Promise.all(flooders.map(flood)));
