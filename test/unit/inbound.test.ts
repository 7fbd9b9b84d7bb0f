/**
 * The gateway's inbound path (durable-objects/gateway/inbound.ts) in Node: the
 * byte bounds per connection and per gateway, shaping to the rate, turns between
 * connections, and what is dropped and counted.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MESSAGE_SPACING_MS } from "../../broker/batcher.ts";
import { readConfig } from "../../broker/config.ts";
import { type Message, messageBytes } from "../../broker/message.ts";
import { TokenBucket } from "../../broker/rate-limit.ts";
import { shardOf } from "../../broker/routing.ts";
import type { GatewayCounter } from "../../broker/stats.ts";
import { type Attachment, Connection } from "../../durable-objects/gateway/connection.ts";
import { ConnectionInbound } from "../../durable-objects/gateway/connection-inbound.ts";
import {
  INBOUND_LIMITS,
  Inbound,
  type InboundLimits,
  type Refusal,
  type Routed,
} from "../../durable-objects/gateway/inbound.ts";
import { aliasBudgets } from "../../durable-objects/gateway/topic-aliases.ts";
import { encode, type Packet, type PublishPacket, ReasonCode } from "../../mqtt/index.ts";

const MAX_PACKET = 1000;

interface Harness {
  inbound: Inbound;
  counts: Map<GatewayCounter, number>;
  /** Batches handed to shards, in order: each message's id. */
  calls: string[][];
  evicted: Array<{ conn: Connection; refusal: Refusal }>;
  /** Answers the oldest call not answered yet. */
  answer(): void;
  /** What runs when the inbound path reads on a held-back connection (the gateway's readOn). */
  readOn: (conn: Connection) => void;
  connection(id: string, ready?: boolean, version?: 4 | 5): Connection;
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
    readOn: (conn) => h.readOn(conn),
    limits: {
      connectionBytes: 10_000,
      gatewayBytes: 20_000,
      gatewayMessages: 1_000,
      windowMessages: 4,
      windowBytes: 1e9,
      decodeAhead: 1_000,
      decodeAheadBytes: 1e9,
      ...limits,
    },
  });
  const connection = (id: string, ready = true, version: 4 | 5 = 5) => {
    const att: Attachment = ready
      ? {
          phase: "connected",
          openedAt: 0,
          clientId: id,
          connId: id,
          version,
          keepAlive: 0,
          persistent: false,
          expiry: 0,
          lastSeen: 0,
        }
      : { phase: "awaiting-connect", openedAt: 0 };
    const socket = { serializeAttachment() {} } as unknown as WebSocket;
    const conn = new Connection(socket, att, MAX_PACKET, (c) => inbound.attach(c), aliasBudgets());
    conn.ready = ready;
    return conn;
  };
  const h: Harness = {
    inbound,
    counts,
    calls,
    evicted,
    answer: () => answers.shift()?.(),
    readOn: () => {},
    connection,
  };
  return h;
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
  it("are 2 MiB a connection, 48 MiB and 20,000 waiting a gateway, 1,000 messages and 8 MiB on the way, 32 decoded ahead of acknowledgements and 16 MiB of them waiting", () => {
    expect(INBOUND_LIMITS).toEqual({
      connectionBytes: 2 * 2 ** 20,
      gatewayBytes: 48 * 2 ** 20,
      gatewayMessages: 20_000,
      windowMessages: 1_000,
      windowBytes: 8 * 2 ** 20,
      decodeAhead: 32,
      decodeAheadBytes: 16 * 2 ** 20,
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

  it("publishes waiting (decoded, at most decodeAhead) count in the gateway's bytes, not in the connection's: a shaped client with a few large ones waiting is slowed down, not ended", () => {
    const h = harness({ PUBLISH_RATE: "1", PUBLISH_BURST: "1" }, { decodeAhead: 4, gatewayBytes: 100_000 });
    const conn = h.connection("a");
    // One goes on its token; three of 8,000 bytes wait: past one largest packet and connectionBytes (12,000).
    for (let i = 0; i < 4; i++) h.inbound.enqueue(conn, message(`m${i}`, 8_000), () => {});
    expect(h.calls).toEqual([["m0"]]);
    const waiting = conn.inbound.held;
    expect(waiting).toBeGreaterThan(MAX_PACKET + 10_000);
    expect(h.inbound.heldBytes).toBe(waiting);
    // Undecoded input is still held to the connection's bound, to the byte, whatever waits.
    expect(feed(h, conn, MAX_PACKET + 10_000)).toBeUndefined();
    expect(h.inbound.heldBytes).toBe(waiting + MAX_PACKET + 10_000);
    expect(feed(h, conn, 1)?.reasonCode).toBe(ReasonCode.MessageRateTooHigh);
    expect(h.evicted).toEqual([]);
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

  it("counts publishes waiting in the gateway's bytes: a holder of mostly waiting publishes is the one ended with 0x89, and its bytes leave the count", () => {
    const h = harness({ PUBLISH_RATE: "1", PUBLISH_BURST: "1" });
    const waiter = h.connection("waiter");
    // One goes on its token; three of 5,000 bytes wait (5,262 each; its undecoded bound is 11,000).
    for (let i = 0; i < 4; i++) h.inbound.enqueue(waiter, message(`w${i}`, 5_000), () => {});
    expect(h.inbound.heldBytes).toBe(3 * (128 + 5_000 + 2 + 4 + 128));
    const sender = h.connection("sender");
    expect(feed(h, sender, 5_000)).toBeUndefined();
    expect(h.evicted.map((e) => [e.conn.connected?.clientId, e.refusal.reasonCode])).toEqual([
      ["waiter", ReasonCode.ServerBusy],
    ]);
    expect(h.inbound.heldBytes).toBe(5_000);
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

describe("a connection that ended while its publish was being handled", () => {
  it("has it dropped, not counted among the gateway's waiting ones, where nothing would take it off", () => {
    const h = harness({ PUBLISH_RATE: "1", PUBLISH_BURST: "1" }, { gatewayMessages: 2 });
    const gone = h.connection("gone");
    gone.detach();
    for (let i = 0; i < 5; i++) expect(h.inbound.enqueue(gone, message(`g${i}`), () => {})).toBeUndefined();
    expect(h.calls).toEqual([]);
    // Another's two may wait: the gateway's 2 are all free.
    const other = h.connection("other");
    for (let i = 0; i < 3; i++) expect(h.inbound.enqueue(other, message(`o${i}`), () => {})).toBeUndefined();
    expect(h.evicted).toEqual([]);
    expect(h.calls).toEqual([["o0"]]);
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
    // m0's answer frees its room: m1 is called, and m2 takes the room m0 left (it is
    // on its way now, behind m1's call).
    expect(h.calls.flat()).toEqual(["m0", "m1"]);
    expect(h.inbound.heldBytes).toBe(0);
    h.answer();
    await settle();
    expect(h.calls.flat()).toEqual(["m0", "m1", "m2"]);
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

describe("QoS 0 over the rate, dropped undecoded", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const qos0 = (extra: Partial<PublishPacket> = {}): PublishPacket =>
    ({
      type: "publish",
      topic: "flood/t",
      qos: 0,
      dup: false,
      retain: false,
      payload: new Uint8Array(100),
      ...extra,
    }) as PublishPacket;

  /** One frame of `packets` read as the gateway reads it: each decoded packet handled (a QoS 0 PUBLISH asks admitQos0, as handle-publish.ts does). */
  async function read(
    h: Harness,
    conn: Connection,
    packets: PublishPacket[],
  ): Promise<Array<Packet | string>> {
    const frame = Buffer.concat(packets.map((p) => encode(p, conn.version)));
    expect(h.inbound.admit(conn, frame.length)).toBeUndefined();
    conn.decoder.feed(new Uint8Array(frame));
    h.inbound.account(conn.inbound);
    const handled: Array<Packet | string> = [];
    await conn.read((next) => {
      h.inbound.account(conn.inbound);
      if ("ok" in next) handled.push(next.message);
      else {
        handled.push(next);
        if (next.type === "publish" && next.qos === 0) h.inbound.admitQos0(conn);
      }
    });
    // As the gateway does once a run ends: what it dropped undecoded is counted.
    h.inbound.account(conn.inbound);
    return handled;
  }

  it.each([4, 5] as const)(
    "protocol level %i: past the burst, no packet is decoded; each is counted as dropped_rate, with its bytes",
    async (version) => {
      const h = harness(
        { PUBLISH_RATE: "10", PUBLISH_BURST: "200" },
        { connectionBytes: 100_000, gatewayBytes: 1e6 },
      );
      const conn = h.connection("a", true, version);
      const handled = await read(
        h,
        conn,
        Array.from({ length: 250 }, () => qos0()),
      );
      // The burst's 200 are decoded and handled (each takes its token); the 50 after them never become a packet.
      expect(handled).toHaveLength(200);
      expect(h.counts.get("dropped_rate")).toBe(250 - 200);
      expect(h.counts.get("messages_in")).toBe(50);
      expect(h.counts.get("bytes_in")).toBe(50 * (100 + "flood/t".length));
      expect(conn.decoder.buffered).toBe(0);
      expect(h.inbound.heldBytes).toBe(0);
      // A token later (100 ms at 10/s), the next one is decoded again.
      vi.advanceTimersByTime(100);
      expect(await read(h, conn, [qos0(), qos0()])).toHaveLength(1);
      expect(h.counts.get("dropped_rate")).toBe(51);
    },
  );

  it("while the way to the shards is full: dropped undecoded as dropped_overload, its token spent as admitQos0 spends it", async () => {
    const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "3" }, { windowMessages: 1 });
    const conn = h.connection("a");
    h.inbound.enqueue(h.connection("b"), message("q1"), () => {});
    expect(
      await read(
        h,
        conn,
        Array.from({ length: 5 }, () => qos0()),
      ),
    ).toEqual([]);
    expect(h.counts.get("dropped_overload")).toBe(3);
    expect(h.counts.get("dropped_rate")).toBe(2);
  });

  it("a packet that sets a Topic Alias (5.0 3.3.2.3.4) is decoded all the same, its alias to be applied", async () => {
    const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "1" });
    const conn = h.connection("a");
    const handled = await read(h, conn, [qos0(), qos0({ properties: { topicAlias: 3 } }), qos0()]);
    expect(handled.map((p) => (typeof p === "string" ? p : p.type === "publish" && p.properties))).toEqual([
      undefined,
      { topicAlias: 3 },
    ]);
    expect(h.counts.get("dropped_rate")).toBe(2);
    expect(h.counts.get("messages_in")).toBe(1);
  });

  it("a packet decoding would refuse is decoded, and refused: DUP set on QoS 0 (MQTT-3.3.1-2), QoS 3 (MQTT-3.3.1-4), a topic that is not UTF-8 (MQTT-1.5.4-1) or holds U+0000 (MQTT-1.5.4-2)", async () => {
    for (const bad of [
      // 0x38: PUBLISH, DUP, QoS 0.
      Uint8Array.from([0x38, 0x05, 0x00, 0x01, 0x74, 0x00, 0x61]),
      Uint8Array.from([0x30, 0x05, 0x00, 0x01, 0xff, 0x00, 0x61]),
      // 0x36: QoS 3; a topic holding U+0000.
      Uint8Array.from([0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x61]),
      Uint8Array.from([0x30, 0x05, 0x00, 0x01, 0x00, 0x00, 0x61]),
    ]) {
      const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "1" });
      const conn = h.connection("a");
      expect(h.inbound.admitQos0(conn)).toBe(true);
      conn.decoder.feed(bad);
      const handled: Array<Packet | string> = [];
      await conn.read((next) => {
        handled.push("ok" in next ? next.message : next.type);
      });
      const reasons: Record<number, string> = {
        56: "PUBLISH QoS 0 with DUP set (MQTT-3.3.1-2)",
        54: "PUBLISH with QoS 3 (MQTT-3.3.1-4)",
      };
      expect(handled).toEqual([reasons[bad[0] as number] ?? expect.stringMatching(/MQTT-1\.5\.4-[12]/)]);
      expect(h.counts.get("dropped_rate")).toBeUndefined();
    }
  });

  it("an over-rate packet split across frames is decoded, then dropped by the rate as any other (counted once, its bytes let go of)", async () => {
    const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "1" });
    const conn = h.connection("a");
    conn.inbound.bucket.spend(1);
    const skip = conn.decoder.skip;
    let asked = 0;
    conn.decoder.skip = (...args) => {
      asked++;
      return skip?.(...args) ?? false;
    };
    const whole = encode(qos0(), conn.version);
    const handled: Array<Packet | string> = [];
    for (const part of [whole.subarray(0, 10), whole.subarray(10)]) {
      expect(h.inbound.admit(conn, part.length)).toBeUndefined();
      conn.decoder.feed(new Uint8Array(part));
      h.inbound.account(conn.inbound);
      await conn.read((next) => {
        h.inbound.account(conn.inbound);
        handled.push("ok" in next ? next.message : next.type);
        if (!("ok" in next) && next.type === "publish") h.inbound.admitQos0(conn);
      });
    }
    h.inbound.account(conn.inbound);
    // Joined from two chunks, it is never offered to skip: decoded, then refused a token.
    expect(asked).toBe(0);
    expect(handled).toEqual(["publish"]);
    expect(h.counts.get("dropped_rate")).toBe(1);
    expect(h.inbound.heldBytes).toBe(0);
  });

  it("before its CONNECT is accepted, a connection's packets are all decoded (a PUBLISH there closes it, MQTT-3.1.0-1)", async () => {
    const h = harness({ PUBLISH_RATE: "10", PUBLISH_BURST: "1" });
    const conn = h.connection("a", false);
    conn.decoder.version = 5;
    conn.inbound.bucket.spend(1);
    expect(await read(h, conn, [qos0(), qos0()])).toHaveLength(2);
    expect(h.counts.get("messages_in")).toBeUndefined();
  });
});

describe("the window to the shards", () => {
  const lifted = { PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" };

  it("a QoS 1 waiting for room goes on as soon as a QoS 0 call frees it, before a newer QoS 0 (which is dropped as overload)", async () => {
    const h = harness(lifted, { windowMessages: 1 });
    const a = h.connection("a");
    const b = h.connection("b");
    expect(h.inbound.admitQos0(b)).toBe(true);
    void h.inbound.route({ ...message("b0"), qos: 0 });
    h.inbound.enqueue(a, message("a0"), () => {});
    expect(h.calls).toEqual([["b0"]]);
    h.answer();
    await settle();
    expect(h.calls).toEqual([["b0"], ["a0"]]);
    expect(h.inbound.admitQos0(b)).toBe(false);
    expect(h.counts.get("dropped_overload")).toBe(1);
  });
});

describe("a connection's decoding held back (decodeAhead)", () => {
  const qos1 = (packetId: number): PublishPacket => ({
    type: "publish",
    topic: "t",
    qos: 1,
    dup: false,
    retain: false,
    packetId,
    payload: new Uint8Array(100),
  });
  const frameOf = (conn: Connection, ids: number[]) =>
    new Uint8Array(Buffer.concat(ids.map((id) => encode(qos1(id), conn.version))));
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  /** A connection whose QoS 1 are handled as handle-publish.ts does: counted until settled, then acknowledged. */
  function publisher(h: Harness) {
    const conn = h.connection("a");
    const decoded: number[] = [];
    const acknowledged: number[] = [];
    const read = () =>
      conn.read((next) => {
        h.inbound.account(conn.inbound);
        if ("ok" in next || next.type !== "publish" || next.qos !== 1)
          throw new Error("a QoS 1 PUBLISH expected");
        const packetId = next.packetId;
        decoded.push(packetId);
        conn.inbound.qos1++;
        h.inbound.enqueue(conn, message(String(packetId)), () => {
          conn.inbound.qos1--;
          acknowledged.push(packetId);
        });
      });
    h.readOn = (c) => {
      expect(c).toBe(conn);
      void read();
    };
    /** A frame arrives, as webSocketMessage takes it. */
    const frame = async (ids: number[]) => {
      const bytes = frameOf(conn, ids);
      const refusal = h.inbound.admit(conn, bytes.length);
      if (refusal !== undefined) return refusal;
      conn.decoder.feed(bytes);
      h.inbound.account(conn.inbound);
      await read();
      h.inbound.account(conn.inbound);
      return undefined;
    };
    /** The shard answers its calls one at a time until `n` are acknowledged, `tries` answers at most. */
    const answerUntil = async (n: number, tries: number) => {
      for (let i = 0; i < tries && acknowledged.length < n; i++) {
        h.answer();
        await settle();
      }
    };
    return { conn, decoded, acknowledged, frame, answerUntil };
  }

  it("at decodeAhead unacknowledged, what follows waits undecoded, its bytes held; once half are acknowledged, decoding goes on, in order", async () => {
    const h = harness({ PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" }, { decodeAhead: 4 });
    const p = publisher(h);
    const packet = frameOf(p.conn, [1]).length;
    expect(await p.frame(range(1, 10))).toBeUndefined();
    // Four decoded, six left as bytes.
    expect(p.decoded).toEqual([1, 2, 3, 4]);
    expect(p.conn.inbound.heldBack).toBe(true);
    expect(p.conn.decoder.buffered).toBe(6 * packet);
    expect(h.inbound.heldBytes).toBe(p.conn.inbound.held);
    // A frame that comes meanwhile is kept, not decoded.
    expect(await p.frame([11, 12])).toBeUndefined();
    expect(p.decoded).toEqual([1, 2, 3, 4]);
    expect(p.conn.decoder.buffered).toBe(8 * packet);
    // The shard has them: acknowledged, and decoding goes on up to four unacknowledged again.
    await p.answerUntil(4, 20);
    expect(p.acknowledged).toEqual([1, 2, 3, 4]);
    expect(p.decoded).toEqual(range(1, 8));
    expect(p.conn.decoder.buffered).toBe(4 * packet);
    await p.answerUntil(12, 50);
    expect(p.decoded).toEqual(range(1, 12));
    expect(p.acknowledged).toEqual(range(1, 12));
    expect(h.calls.flat()).toEqual(range(1, 12).map(String));
    expect(p.conn.decoder.buffered).toBe(0);
    expect(p.conn.inbound.heldBack).toBe(false);
    expect(h.inbound.heldBytes).toBe(0);
  });

  it("at decodeAheadBytes of decoded publishes waiting, whatever their number, what follows waits undecoded; read on as soon as less waits", async () => {
    // Each waiting publish weighs 270 bytes here (128 + messageBytes of a 10-byte payload, a
    // 1-character id). Five may be unacknowledged: held for its bytes with four, it reads on
    // with three, not only once half (two) are left.
    const h = harness(
      { PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" },
      { windowMessages: 1, decodeAhead: 5, decodeAheadBytes: 3 * 270 },
    );
    const p = publisher(h);
    const packet = frameOf(p.conn, [1]).length;
    expect(await p.frame(range(1, 9))).toBeUndefined();
    // 1 on its way (a window of one), 2 to 4 waiting for room: 810 bytes, the bound. Five left as bytes.
    expect(p.decoded).toEqual([1, 2, 3, 4]);
    expect(p.conn.inbound.heldBack).toBe(true);
    expect(p.conn.decoder.buffered).toBe(5 * packet);
    // 1 answered, 2 goes on: 540 bytes wait, less than the bound: one more decoded (3, 4, 5 wait).
    h.answer();
    await settle();
    expect(p.acknowledged).toEqual([1]);
    expect(p.decoded).toEqual(range(1, 5));
    expect(p.conn.inbound.heldBack).toBe(true);
    expect(p.conn.decoder.buffered).toBe(4 * packet);
    h.answer();
    await settle();
    expect(p.acknowledged).toEqual([1, 2]);
    expect(p.decoded).toEqual(range(1, 6));
    await p.answerUntil(9, 30);
    expect(p.acknowledged).toEqual(range(1, 9));
    expect(h.calls.flat()).toEqual(range(1, 9).map(String));
    expect(p.conn.decoder.buffered).toBe(0);
    expect(h.inbound.heldBytes).toBe(0);
  });

  it("its socket closed with input held back: the held publishes are dropped undecoded and unanswered, a DISCONNECT behind them is handled", async () => {
    const h = harness({ PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" }, { decodeAhead: 4 });
    const p = publisher(h);
    const bytes = new Uint8Array(
      Buffer.concat([frameOf(p.conn, range(1, 10)), encode({ type: "disconnect", reasonCode: 0 }, 5)]),
    );
    expect(h.inbound.admit(p.conn, bytes.length)).toBeUndefined();
    p.conn.decoder.feed(bytes);
    h.inbound.account(p.conn.inbound);
    const handled: string[] = [];
    const read = () =>
      p.conn.read((next) => {
        if ("ok" in next) throw new Error(next.message);
        handled.push(next.type === "publish" ? `publish ${next.qos === 0 ? 0 : next.packetId}` : next.type);
        if (next.type === "publish" && next.qos === 1) {
          p.conn.inbound.qos1++;
          h.inbound.enqueue(p.conn, message(String(next.packetId)), () => p.conn.inbound.qos1--);
        }
      });
    await read();
    expect(handled).toEqual(["publish 1", "publish 2", "publish 3", "publish 4"]);
    p.conn.inbound.lift();
    await read();
    h.inbound.account(p.conn.inbound);
    expect(handled).toEqual(["publish 1", "publish 2", "publish 3", "publish 4", "disconnect"]);
    expect(p.conn.decoder.buffered).toBe(0);
    // Only what was decoded before is routed: 1 to 4.
    for (let i = 0; i < 10; i++) {
      h.answer();
      await settle();
    }
    expect(h.calls.flat()).toEqual(["1", "2", "3", "4"]);
  });

  it("held back, a client that keeps sending is ended at its byte budget (0x96), having cost no decoding", async () => {
    const h = harness({ PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" }, { decodeAhead: 4 });
    const p = publisher(h);
    const packet = frameOf(p.conn, [1]).length;
    expect(await p.frame(range(1, 4))).toBeUndefined();
    expect(p.conn.inbound.heldBack).toBe(true);
    // What the budget holds of undecoded input (the four decoded count in the gateway's bytes only):
    // one largest packet and connectionBytes.
    const fits = Math.floor((MAX_PACKET + 10_000) / packet);
    let next = 5;
    for (let i = 0; i < fits; i++) expect(await p.frame([next++])).toBeUndefined();
    const refusal = await p.frame([next]);
    expect(refusal?.reasonCode).toBe(ReasonCode.MessageRateTooHigh);
    expect(refusal?.why).toBe(`more than ${MAX_PACKET + 10_000} bytes received and not yet handled`);
    expect(p.decoded).toEqual([1, 2, 3, 4]);
    expect(p.conn.decoder.buffered).toBe(fits * packet);
  });

  it("holds back at decodeAhead QoS 1 and 2 unacknowledged, and reads on at half: not before, and at once", () => {
    const conn = harness({}).connection("a");
    const state = new ConnectionInbound(
      conn,
      new TokenBucket(1, 1),
      { release() {} },
      {
        messages: 4,
        bytes: 1e9,
      },
    );
    state.qos1 = 3;
    expect(state.holdsBack()).toBe(false);
    state.qos1 = 2;
    state.qos2.add(7).add(8);
    expect(state.holdsBack()).toBe(true);
    // Three left: not yet half.
    state.qos2.delete(7);
    expect(state.readsOn()).toBe(false);
    expect(state.holdsBack()).toBe(true);
    // Two left: half; reading goes on, and holds back again at four.
    state.qos2.delete(8);
    expect(state.readsOn()).toBe(true);
    expect(state.heldBack).toBe(false);
    expect(state.readsOn()).toBe(false);
    state.qos1 = 3;
    expect(state.holdsBack()).toBe(false);
    state.qos1 = 4;
    expect(state.holdsBack()).toBe(true);
    // Its socket closed: nothing is held back any more (what it sent is read).
    state.lift();
    expect(state.holdsBack()).toBe(false);
  });

  it("a Receive Maximum set lower than 65,535 is decoded past, to be refused (0x93): decodeAhead is at least one more", () => {
    const h = harness({ RECEIVE_MAXIMUM: "100" }, { decodeAhead: 4 });
    const conn = h.connection("a");
    conn.inbound.qos1 = 100;
    expect(conn.inbound.holdsBack()).toBe(false);
    conn.inbound.qos1 = 101;
    expect(conn.inbound.holdsBack()).toBe(true);
  });

  it("reading on is never lost: two shards answering in the same turn, at any distance, with a handler that awaits (as handle-publish.ts does)", async () => {
    const config = readConfig({
      MAX_PACKET_SIZE: String(MAX_PACKET),
      TOPIC_SHARDS: "2",
      PUBLISH_RATE: "1000000",
      PUBLISH_BURST: "1000000",
    });
    const topics = [0, 1].map((shard) => {
      for (let i = 0; ; i++) if (shardOf(`t${i}`, config.layout) === shard) return `t${i}`;
    }) as [string, string];
    for (let distance = 0; distance <= 30; distance++) {
      const calls: Array<{ shard: number; answer: () => void }> = [];
      let readOn: (conn: Connection) => void = () => {};
      const inbound = new Inbound({
        config,
        counters: { add() {} },
        publishAt: (shard, messages) =>
          new Promise((resolve) => calls.push({ shard, answer: () => resolve(messages.map(() => 0)) })),
        evict() {},
        readOn: (c) => readOn(c),
        limits: {
          connectionBytes: 1e6,
          gatewayBytes: 1e7,
          gatewayMessages: 1_000,
          windowMessages: 1_000,
          windowBytes: 1e9,
          decodeAhead: 4,
          decodeAheadBytes: 1e9,
        },
      });
      const att: Attachment = {
        phase: "connected",
        openedAt: 0,
        clientId: "a",
        connId: "a",
        version: 5,
        keepAlive: 0,
        persistent: false,
        expiry: 0,
        lastSeen: 0,
      };
      const conn = new Connection(
        { serializeAttachment() {} } as unknown as WebSocket,
        att,
        MAX_PACKET,
        (c) => inbound.attach(c),
        aliasBudgets(),
      );
      conn.ready = true;
      const decoded: number[] = [];
      const handle = async (next: Packet | { ok: false }) => {
        inbound.account(conn.inbound);
        await Promise.resolve();
        if ("ok" in next || next.type !== "publish" || next.qos !== 1)
          throw new Error("a QoS 1 PUBLISH expected");
        decoded.push(next.packetId);
        conn.inbound.qos1++;
        inbound.enqueue(conn, { ...message(String(next.packetId)), topic: next.topic }, () => {
          conn.inbound.qos1--;
        });
      };
      readOn = (c) => void c.read(handle);
      // A call in flight to each shard, so that 1 and 3 (shard 0) and 2 and 4 (shard 1) go together next.
      void inbound.route({ ...message("d0"), topic: topics[0], qos: 0 });
      void inbound.route({ ...message("d1"), topic: topics[1], qos: 0 });
      const packets = range(1, 10).map((id) => ({
        type: "publish" as const,
        topic: id <= 4 && id % 2 === 0 ? topics[1] : topics[0],
        qos: 1 as const,
        dup: false,
        retain: false,
        packetId: id,
        payload: new Uint8Array(10),
      }));
      const bytes = new Uint8Array(Buffer.concat(packets.map((p) => encode(p, 5))));
      expect(inbound.admit(conn, bytes.length)).toBeUndefined();
      conn.decoder.feed(bytes);
      await conn.read(handle);
      expect(decoded).toEqual([1, 2, 3, 4]);
      await settle();
      calls.shift()?.answer();
      calls.shift()?.answer();
      await settle();
      // Both shards answer in one turn, `distance` microtasks apart.
      const [a, b] = [0, 1].map(
        (shard) =>
          calls.splice(
            calls.findIndex((c) => c.shard === shard),
            1,
          )[0],
      );
      a?.answer();
      let later = Promise.resolve();
      for (let i = 0; i < distance; i++) later = later.then(() => {});
      void later.then(() => b?.answer());
      for (let i = 0; i < 100 && decoded.length < 10; i++) {
        await settle();
        calls.shift()?.answer();
      }
      expect({ distance, decoded }).toEqual({ distance, decoded: range(1, 10) });
      expect(conn.decoder.buffered).toBe(0);
    }
  });
});
