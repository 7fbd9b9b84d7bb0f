/**
 * The gateway's inbound path (durable-objects/gateway/inbound.ts) in Node: the
 * byte bounds per connection and per gateway, shaping to the rate, turns between
 * connections, and what is dropped and counted.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MESSAGE_SPACING_MS } from "../../broker/batcher.ts";
import { readConfig } from "../../broker/config.ts";
import { type Message, messageBytes } from "../../broker/message.ts";
import type { GatewayCounter } from "../../broker/stats.ts";
import { type Attachment, Connection } from "../../durable-objects/gateway/connection.ts";
import {
  INBOUND_LIMITS,
  Inbound,
  type InboundLimits,
  type Refusal,
  type Routed,
} from "../../durable-objects/gateway/inbound.ts";
import { ReasonCode } from "../../mqtt/index.ts";

const MAX_PACKET = 1000;

interface Harness {
  inbound: Inbound;
  counts: Map<GatewayCounter, number>;
  /** Batches handed to shards, in order: each message's id. */
  calls: string[][];
  evicted: Array<{ conn: Connection; refusal: Refusal }>;
  /** Answers the oldest call not answered yet. */
  answer(): void;
  connection(id: string, ready?: boolean): Connection;
}

function harness(vars: Record<string, string>, limits: Partial<InboundLimits> = {}): Harness {
  const counts = new Map<GatewayCounter, number>();
  const calls: string[][] = [];
  const answers: Array<() => void> = [];
  const evicted: Harness["evicted"] = [];
  const inbound = new Inbound({
    config: readConfig({ MAX_PACKET_SIZE: String(MAX_PACKET), ...vars }),
    counters: { add: (name, n = 1) => counts.set(name, (counts.get(name) ?? 0) + n) },
    publishAt: (_shard, messages) => {
      calls.push(messages.map((m) => m.id));
      return new Promise((resolve) => answers.push(() => resolve(messages.map(() => 0))));
    },
    evict: (conn, refusal) => {
      evicted.push({ conn, refusal });
      conn.detach();
    },
    limits: {
      connectionBytes: 10_000,
      gatewayBytes: 20_000,
      gatewayMessages: 1_000,
      windowMessages: 4,
      windowBytes: 1e9,
      ...limits,
    },
  });
  const connection = (id: string, ready = true) => {
    const att: Attachment = ready
      ? {
          phase: "connected",
          openedAt: 0,
          clientId: id,
          connId: id,
          version: 5,
          keepAlive: 0,
          persistent: false,
          expiry: 0,
          lastSeen: 0,
        }
      : { phase: "awaiting-connect", openedAt: 0 };
    const socket = { serializeAttachment() {} } as unknown as WebSocket;
    const conn = new Connection(socket, att, MAX_PACKET, (c) => inbound.attach(c));
    conn.ready = ready;
    return conn;
  };
  return {
    inbound,
    counts,
    calls,
    evicted,
    answer: () => answers.shift()?.(),
    connection,
  };
}

const message = (id: string, payload = 10): Message => ({
  id,
  topic: "t",
  payload: new Uint8Array(payload),
  qos: 1,
  retain: false,
});

/** Feeds `bytes` of input to a connection, as a frame does, after admitting it. */
function feed(h: Harness, conn: Connection, bytes: number): Refusal | undefined {
  const refusal = h.inbound.admit(conn, bytes);
  if (refusal !== undefined) return refusal;
  conn.decoder.feed(new Uint8Array(bytes).fill(0x30));
  h.inbound.account(conn.inbound);
  return undefined;
}

const settle = () => new Promise((r) => setImmediate(r));

describe("the bounds a gateway keeps (docs/limits.md)", () => {
  it("are 2 MiB a connection, 48 MiB and 20,000 waiting a gateway, 1,000 messages and 8 MiB on the way", () => {
    expect(INBOUND_LIMITS).toEqual({
      connectionBytes: 2 * 2 ** 20,
      gatewayBytes: 48 * 2 ** 20,
      gatewayMessages: 20_000,
      windowMessages: 1_000,
      windowBytes: 8 * 2 ** 20,
      spacingMs: MESSAGE_SPACING_MS,
    });
  });
});

describe("what a connection may hold", () => {
  it("before CONNACK: one largest packet; a byte more is refused with 0x96", () => {
    const h = harness({});
    const conn = h.connection("a", false);
    expect(feed(h, conn, MAX_PACKET)).toBeUndefined();
    expect(h.inbound.heldBytes).toBe(MAX_PACKET);
    const refusal = feed(h, conn, 1);
    expect(refusal?.reasonCode).toBe(ReasonCode.MessageRateTooHigh);
    expect(refusal?.why).toBe(`more than ${MAX_PACKET} bytes received and not yet handled`);
  });

  it("once connected: one largest packet and connectionBytes more, exactly", () => {
    const h = harness({});
    const conn = h.connection("a");
    expect(feed(h, conn, MAX_PACKET + 10_000)).toBeUndefined();
    expect(feed(h, conn, 1)?.reasonCode).toBe(ReasonCode.MessageRateTooHigh);
  });

  it("counts publishes waiting for their turn with their bytes, and lets go of all of it when the connection ends", () => {
    const h = harness({ PUBLISH_RATE: "1", PUBLISH_BURST: "1" });
    const conn = h.connection("a");
    for (let i = 0; i < 3; i++) h.inbound.enqueue(conn, message(`m${i}`, 1000), () => {});
    // The first went on (the burst's one token); two wait, each its message's call
    // bytes and 128 bytes of memory.
    expect(h.calls).toEqual([["m0"]]);
    const each = h.inbound.heldBytes / 2;
    expect(each).toBe(128 + 1000 + 2 * "t".length + 2 * "m1".length + 128);
    conn.detach();
    expect(h.inbound.heldBytes).toBe(0);
  });
});

describe("what a gateway may hold", () => {
  it("past gatewayBytes, the connection holding the most ends with 0x89 and a newcomer gets in", () => {
    const h = harness({});
    const big = h.connection("big");
    const mid = h.connection("mid");
    expect(feed(h, big, 10_500)).toBeUndefined();
    expect(feed(h, mid, 9_000)).toBeUndefined();
    expect(h.inbound.heldBytes).toBe(19_500);
    const newcomer = h.connection("new", false);
    expect(feed(h, newcomer, 600)).toBeUndefined();
    expect(h.evicted.map((e) => [e.conn.connected?.clientId, e.refusal.reasonCode])).toEqual([
      ["big", ReasonCode.ServerBusy],
    ]);
    expect(big.finished).toBe(true);
    expect(h.inbound.heldBytes).toBe(9_600);
  });

  it("refuses the arriving connection itself when it holds the most", () => {
    const h = harness({});
    const small = h.connection("small");
    const big = h.connection("big");
    expect(feed(h, small, 9_500)).toBeUndefined();
    expect(feed(h, big, 10_000)).toBeUndefined();
    // Within its own bound (11,000), past the gateway's (20,000), and the largest.
    expect(feed(h, big, 1_000)?.reasonCode).toBe(ReasonCode.ServerBusy);
    expect(h.evicted).toEqual([]);
    expect(small.finished).toBe(false);
  });
});

describe("work a gateway may take on", () => {
  it("past gatewayMessages waiting, the connection with the most waiting ends with 0x96, and the newcomer's goes on", () => {
    const h = harness({ PUBLISH_RATE: "1", PUBLISH_BURST: "1" }, { gatewayMessages: 5 });
    const busy = h.connection("busy");
    const other = h.connection("other");
    for (let i = 0; i < 4; i++) expect(h.inbound.enqueue(busy, message(`b${i}`), () => {})).toBeUndefined();
    for (let i = 0; i < 3; i++) expect(h.inbound.enqueue(other, message(`o${i}`), () => {})).toBeUndefined();
    // b0 and o0 went on with their one token each; 3 + 2 wait: the gateway's 5.
    const newcomer = h.connection("new");
    expect(h.inbound.enqueue(newcomer, message("n0"), () => {})).toBeUndefined();
    expect(h.evicted.map((e) => [e.conn.connected?.clientId, e.refusal.reasonCode])).toEqual([
      ["busy", ReasonCode.MessageRateTooHigh],
    ]);
    // n0 went on with newcomer's token: o1 and o2 wait. other fills the gateway's
    // 5 again, and is then refused its next one itself, having the most waiting.
    for (const id of ["o3", "o4", "o5"])
      expect(h.inbound.enqueue(other, message(id), () => {})).toBeUndefined();
    expect(h.inbound.enqueue(other, message("o6"), () => {})?.reasonCode).toBe(ReasonCode.MessageRateTooHigh);
  });
});

describe("over the rate", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("QoS 1/2 waits for the next token, in order, and is never dropped", async () => {
    const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "2" }, { windowMessages: 100 });
    const conn = h.connection("a");
    const done: string[] = [];
    for (let i = 0; i < 5; i++) h.inbound.enqueue(conn, message(`m${i}`), () => done.push(`m${i}`));
    // The burst goes at once; the rest one per 100 ms.
    expect(h.calls.flat()).toEqual(["m0"]);
    h.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.calls.flat()).toEqual(["m0", "m1"]);
    h.answer();
    await vi.advanceTimersByTimeAsync(99);
    expect(h.calls.flat()).toEqual(["m0", "m1"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.calls.flat()).toEqual(["m0", "m1", "m2"]);
    h.answer();
    await vi.advanceTimersByTimeAsync(200);
    h.answer();
    await vi.advanceTimersByTimeAsync(0);
    h.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.calls.flat()).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(done).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(h.counts.get("dropped_rate")).toBeUndefined();
  });

  it("QoS 0 past the rate is dropped and counted, exactly", () => {
    const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "3" });
    const conn = h.connection("a");
    const admitted = Array.from({ length: 10 }, () => h.inbound.admitQos0(conn));
    expect(admitted.filter(Boolean)).toHaveLength(3);
    expect(h.counts.get("dropped_rate")).toBe(7);
    vi.advanceTimersByTime(100);
    expect(h.inbound.admitQos0(conn)).toBe(true);
  });

  it("QoS 0 does not overtake QoS 1/2 waiting for a token: it is dropped", () => {
    const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "1" });
    const conn = h.connection("a");
    h.inbound.enqueue(conn, message("q1"), () => {});
    h.inbound.enqueue(conn, message("q2"), () => {});
    vi.advanceTimersByTime(50);
    expect(h.inbound.admitQos0(conn)).toBe(false);
    expect(h.counts.get("dropped_rate")).toBe(1);
  });
});

describe("turns on the way to the shards", () => {
  it("a connection with many waiting does not hold up another's one: they take turns", async () => {
    const h = harness({ PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" }, { windowMessages: 2 });
    const busy = h.connection("busy");
    const other = h.connection("other");
    for (let i = 0; i < 50; i++) h.inbound.enqueue(busy, message(`b${i}`), () => {});
    const routed: Routed[] = [];
    h.inbound.enqueue(other, message("o0"), (r) => routed.push(r));
    // The window holds two (b0 on its way, b1 next). As room frees, the connections
    // take turns: busy had its turn already queued (b2), then other's comes, though
    // busy has 47 more waiting.
    expect(h.calls.flat()).toEqual(["b0"]);
    for (let i = 0; i < 3; i++) {
      h.answer();
      await settle();
    }
    expect(h.calls.flat()).toEqual(["b0", "b1", "b2", "o0"]);
    h.answer();
    await settle();
    expect(routed).toEqual([{ ok: true, code: 0 }]);
  });

  it("QoS 0 is dropped and counted as overload while the window is full", () => {
    const h = harness({}, { windowMessages: 1 });
    const conn = h.connection("a");
    h.inbound.enqueue(conn, message("q1"), () => {});
    expect(h.inbound.admitQos0(conn)).toBe(false);
    expect(h.counts.get("dropped_overload")).toBe(1);
  });

  it("past windowBytes on the way, QoS 1/2 waits and QoS 0 is dropped and counted; one message goes whatever it weighs", async () => {
    const each = messageBytes(message("m0", 1000));
    const lifted = { PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" };
    const h = harness(lifted, { windowMessages: 100, windowBytes: 2 * each });
    const conn = h.connection("a");
    const done: string[] = [];
    for (let i = 0; i < 3; i++) h.inbound.enqueue(conn, message(`m${i}`, 1000), () => done.push(`m${i}`));
    // m0 and m1 fill the window's bytes exactly (m0 is called, m1 waits in the
    // batcher for m0's answer); m2 waits its turn here.
    expect(h.calls.flat()).toEqual(["m0"]);
    expect(h.inbound.heldBytes).toBe(each + 128);
    // Another connection's QoS 0, within its rate, finds no room.
    expect(h.inbound.admitQos0(h.connection("q"))).toBe(false);
    expect(h.counts.get("dropped_overload")).toBe(1);
    expect(h.counts.get("dropped_rate")).toBeUndefined();
    h.answer();
    await settle();
    expect(h.calls.flat()).toEqual(["m0", "m1", "m2"]);
    expect(h.inbound.heldBytes).toBe(0);
    h.answer();
    h.answer();
    await settle();
    expect(done).toEqual(["m0", "m1", "m2"]);

    // A window smaller than one message: it goes alone, the next waits for its answer.
    const small = harness(lifted, { windowMessages: 100, windowBytes: each - 1 });
    const b = small.connection("b");
    for (let i = 0; i < 2; i++) small.inbound.enqueue(b, message(`m${i}`, 1000), () => {});
    expect(small.calls.flat()).toEqual(["m0"]);
    expect(small.inbound.admitQos0(small.connection("q"))).toBe(false);
    expect(small.counts.get("dropped_overload")).toBe(1);
    small.answer();
    await settle();
    expect(small.calls.flat()).toEqual(["m0", "m1"]);
  });

  it("what waits for an ended connection is let go of, never sent", async () => {
    const h = harness({ PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" }, { windowMessages: 1 });
    const conn = h.connection("a");
    const done: string[] = [];
    for (let i = 0; i < 3; i++) h.inbound.enqueue(conn, message(`m${i}`), () => done.push(`m${i}`));
    conn.detach();
    h.answer();
    await settle();
    expect(h.calls.flat()).toEqual(["m0"]);
    expect(done).toEqual(["m0"]);
    expect(h.inbound.heldBytes).toBe(0);
  });
});

describe("spaced calls to a shard", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const lifted = { PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000", RECEIVE_MAXIMUM: "10" };

  it("publishes that follow a recent call wait for the spacing and go in one call", async () => {
    const h = harness(lifted, { windowMessages: 100, spacingMs: 5 });
    const a = h.connection("a");
    const b = h.connection("b");
    h.inbound.enqueue(a, message("a0"), () => {});
    h.answer();
    await vi.advanceTimersByTimeAsync(1);
    h.inbound.enqueue(a, message("a1"), () => {});
    h.inbound.enqueue(b, message("b0"), () => {});
    await vi.advanceTimersByTimeAsync(3);
    expect(h.calls).toEqual([["a0"]]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.calls).toEqual([["a0"], ["a1", "b0"]]);
  });

  it("a publisher with half its Receive Maximum unacknowledged is not held back (one more: 0x93)", async () => {
    const h = harness(lifted, { windowMessages: 100, spacingMs: 5 });
    const a = h.connection("a");
    h.inbound.enqueue(a, message("a0"), () => {});
    h.answer();
    await vi.advanceTimersByTimeAsync(1);
    // As handle-publish counts them: four unacknowledged wait, the fifth is half of 10.
    for (let i = 1; i <= 5; i++) {
      a.inbound.qos1++;
      h.inbound.enqueue(a, message(`a${i}`), () => {});
      await vi.advanceTimersByTimeAsync(0);
      expect(h.calls).toHaveLength(i < 5 ? 1 : 2);
    }
    expect(h.calls).toEqual([["a0"], ["a1", "a2", "a3", "a4", "a5"]]);
  });
});
