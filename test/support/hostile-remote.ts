/**
 * A remote broker that does not keep to the rules, for bridge tests: it answers
 * a bridge's CONNECT, SUBSCRIBE and PINGREQ as a broker would (MQTT 5.0), and
 * sends whatever bytes a test gives it: PUBLISH packets that Mosquitto would
 * never pass on (a control character, a wildcard, an empty topic), or a header
 * announcing 64 MiB. Plain TCP on loopback.
 */
import { createServer, type Server, type Socket } from "node:net";
import { encode, type Packet, StreamDecoder } from "../../mqtt/index.ts";

export interface HostileRemote {
  port: number;
  /** Connections the bridge made so far. */
  readonly connections: number;
  /** Resolves once the bridge has subscribed on its `n`th connection. */
  subscribed(n: number): Promise<void>;
  /** Raw bytes to the bridge on its current connection. */
  send(bytes: Uint8Array): void;
  /** Packet ids the bridge acknowledged (PUBACK). */
  readonly acked: number[];
  /** When each PINGREQ arrived (ms, performance.now()). */
  readonly pings: number[];
  /** Resolves once `n` PINGREQs in all have arrived. */
  pinged(n: number): Promise<void>;
  stop(): Promise<void>;
}

/** A 5.0 PUBLISH as bytes, whatever its topic: nothing is checked. */
export function rawPublish(
  topic: string,
  payload: Uint8Array,
  qos: 0 | 1,
  packetId = 1,
  retain = false,
): Uint8Array {
  const t = new TextEncoder().encode(topic);
  const variable = [
    t.length >> 8,
    t.length & 0xff,
    ...t,
    ...(qos > 0 ? [packetId >> 8, packetId & 0xff] : []),
    0,
  ];
  const remaining = variable.length + payload.length;
  const length: number[] = [];
  let n = remaining;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    length.push(b);
  } while (n > 0);
  const out = new Uint8Array(1 + length.length + variable.length + payload.length);
  out.set([0x30 | (qos << 1) | (retain ? 1 : 0), ...length, ...variable]);
  out.set(payload, 1 + length.length + variable.length);
  return out;
}

export async function startHostileRemote(): Promise<HostileRemote> {
  let current: Socket | undefined;
  let connections = 0;
  let subscriptions = 0;
  const acked: number[] = [];
  const pings: number[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const pingWaiters: Array<{ n: number; resolve: () => void }> = [];
  const server: Server = createServer((socket) => {
    connections++;
    current = socket;
    const decoder = new StreamDecoder({ version: 5 });
    const reply = (p: Packet) => socket.write(encode(p, 5));
    socket.on("error", () => undefined);
    socket.on("data", (chunk: Buffer) => {
      for (const p of decoder.push(new Uint8Array(chunk)).packets) {
        if (p.type === "connect") reply({ type: "connack", sessionPresent: false, reasonCode: 0 });
        else if (p.type === "pingreq") {
          pings.push(performance.now());
          reply({ type: "pingresp" });
          for (const w of pingWaiters.splice(0)) {
            if (pings.length >= w.n) w.resolve();
            else pingWaiters.push(w);
          }
        } else if (p.type === "puback") acked.push(p.packetId);
        else if (p.type === "subscribe") {
          reply({ type: "suback", packetId: p.packetId, reasonCodes: p.subscriptions.map((s) => s.qos) });
          subscriptions++;
          for (const w of waiters.splice(0)) {
            if (subscriptions >= w.n) w.resolve();
            else waiters.push(w);
          }
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    port,
    get connections() {
      return connections;
    },
    subscribed: (n) =>
      subscriptions >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })),
    send: (bytes) => current?.write(bytes),
    acked,
    pings,
    pinged: (n) =>
      pings.length >= n ? Promise.resolve() : new Promise((resolve) => pingWaiters.push({ n, resolve })),
    stop: async () => {
      current?.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
