/**
 * `npm run bench:memory`: what one idle connection costs a Gateway while the
 * object is awake, measured on the very structures it keeps (in Node, with the
 * same V8): the Connection with its decoder and in-flight window, its
 * attachment, its entry in the clients map and one subscription in the local
 * index. From it, how many connections fit in an object's 128 MB. On Cloudflare
 * an idle gateway hibernates and then holds none of this: the runtime keeps the
 * sockets and their attachments.
 */

import { TokenBucket } from "../broker/rate-limit.ts";
import type { SubscriptionOptions } from "../broker/session-state.ts";
import { type Connected, Connection } from "../durable-objects/gateway/connection.ts";
import { ConnectionInbound, decodeAheadOf, INBOUND_LIMITS } from "../durable-objects/gateway/inbound.ts";
import { HeldBudget, OutboundWindow } from "../durable-objects/gateway/outbound-window.ts";
import { aliasBudgets } from "../durable-objects/gateway/topic-aliases.ts";
import { SubscriptionIndex } from "../mqtt/index.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc");

const N = 20_000;
const MAX_PACKET = 1024 * 1024;
const OBJECT_LIMIT = 128 * 1024 * 1024;

function attachment(i: number): Connected {
  return {
    phase: "connected",
    openedAt: Date.now(),
    clientId: `sensor-${i.toString().padStart(6, "0")}`,
    connId: crypto.randomUUID(),
    version: 5,
    keepAlive: 60,
    persistent: false,
    expiry: 0,
    lastSeen: Date.now(),
    receiveMaximum: 100,
  };
}

/** Stands in for the runtime's WebSocket: the attachment lives with the socket. */
class FakeSocket {
  attachment: unknown;
  serializeAttachment(a: unknown) {
    this.attachment = structuredClone(a);
  }
}

function heap(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

const base = heap();
const clients = new Map<string, Connection>();
const sockets = new Map<FakeSocket, Connection>();
const index = new SubscriptionIndex<SubscriptionOptions>();
const options: SubscriptionOptions = { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 };
// One budget for held messages per gateway, shared by its windows.
const budget = new HeldBudget(Number.POSITIVE_INFINITY);
const aliases = aliasBudgets<Connection>();
for (let i = 0; i < N; i++) {
  const ws = new FakeSocket();
  const att = attachment(i);
  const conn = new Connection(
    ws as unknown as WebSocket,
    att,
    MAX_PACKET,
    (c) =>
      new ConnectionInbound(c, new TokenBucket(100, 200), { release() {} }, decodeAheadOf(INBOUND_LIMITS)),
    aliases,
  );
  conn.save();
  conn.ready = true;
  conn.window = new OutboundWindow([], budget);
  clients.set(att.clientId, conn);
  sockets.set(ws, conn);
  index.add(`devices/${att.clientId}/commands/#`, att.clientId, options);
}
const perConnection = (heap() - base) / N;
const attachmentBytes = JSON.stringify(attachment(1)).length;
console.log(`| measure | value |`);
console.log(`| --- | --- |`);
console.log(
  `| JS heap per idle connection (Connection, decoder, inbound state, window, attachment copy, maps, one subscription) | ${(perConnection / 1024).toFixed(2)} KiB |`,
);
console.log(
  `| attachment serialized (JSON length; the runtime's limit is 2,048 bytes) | ${attachmentBytes} bytes |`,
);
console.log(
  `| connections in 128 MB at that rate (heap only) | ${Math.floor(OBJECT_LIMIT / perConnection).toLocaleString("en")} |`,
);
// keep everything alive until measured
if (clients.size + sockets.size + index.size < 0) console.log("unreachable");
