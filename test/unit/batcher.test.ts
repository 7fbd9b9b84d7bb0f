/** KeyedBatcher: one call in flight per key, calls bounded in items and bytes, order kept, calls spaced. */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KeyedBatcher } from "../../broker/batcher.ts";
import {
  assertWithinCall,
  MESSAGE_BATCH,
  type Message,
  messageBytes,
  ownedBytes,
  RPC_BATCH_BYTES,
  RPC_CALL_LIMIT,
} from "../../broker/message.ts";

describe("KeyedBatcher", () => {
  it("never sends a call over its byte budget (an item larger than it goes alone), and keeps order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 200 }),
        async (sizes) => {
          const calls: number[][] = [];
          const batcher = new KeyedBatcher<string, number, number>(
            async (_key, items) => {
              calls.push(items);
              await Promise.resolve();
              return items.map((i) => i * 2);
            },
            { maxItems: 50, maxBytes: 256, sizeOf: (i) => sizes[i] as number },
          );
          const results = await Promise.all(sizes.map((_, i) => batcher.add("k", i)));
          expect(results).toEqual(sizes.map((_, i) => i * 2));
          expect(calls.flat()).toEqual(sizes.map((_, i) => i));
          for (const call of calls) {
            expect(call.length).toBeLessThanOrEqual(50);
            const bytes = call.reduce((sum, i) => sum + (sizes[i] as number), 0);
            if (call.length > 1) expect(bytes).toBeLessThanOrEqual(256);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("carries forty 1 MiB messages in calls of at most 8 MiB each", async () => {
    const calls: number[] = [];
    const batcher = new KeyedBatcher<number, Message>(async (_shard, messages) => {
      calls.push(messages.reduce((sum, m) => sum + messageBytes(m), 0));
      return undefined;
    }, MESSAGE_BATCH);
    const message = (i: number): Message => ({
      id: `m${i}`,
      topic: `big/${i}`,
      payload: new Uint8Array(2 ** 20),
      qos: 1,
      retain: false,
    });
    await Promise.all(Array.from({ length: 40 }, (_, i) => batcher.add(0, message(i))));
    expect(calls.reduce((a, b) => a + b, 0)).toBeGreaterThan(40 * 2 ** 20);
    for (const bytes of calls) expect(bytes).toBeLessThanOrEqual(RPC_BATCH_BYTES);
    expect(calls.length).toBeGreaterThanOrEqual(5);
  });
});

describe("KeyedBatcher with spacing", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const SPACING = 10;
  /** A batcher whose calls answer at once (a resolved promise) and are recorded with the time they started. */
  function spaced(limits: { maxItems?: number; maxBytes?: number; sizeOf?: (i: number) => number } = {}) {
    const calls: Array<{ key: string; at: number; items: number[] }> = [];
    const batcher = new KeyedBatcher<string, number, number>(
      async (key, items) => {
        calls.push({ key, at: Date.now(), items });
        return items;
      },
      {
        maxItems: limits.maxItems ?? 100,
        maxBytes: limits.maxBytes ?? 1_000_000,
        sizeOf: limits.sizeOf ?? (() => 1),
        spacingMs: SPACING,
      },
    );
    return { calls, batcher };
  }

  it("sends a lone item at once, and an item after an idle spacing at once", async () => {
    const { calls, batcher } = spaced();
    const first = batcher.add("k", 1);
    expect(calls).toEqual([{ key: "k", at: 1_000_000, items: [1] }]);
    expect(await first).toBe(1);
    await vi.advanceTimersByTimeAsync(SPACING);
    void batcher.add("k", 2);
    expect(calls.map((c) => c.items)).toEqual([[1], [2]]);
    expect(calls[1]?.at).toBe(1_000_000 + SPACING);
  });

  it("holds items that follow a recent call until the spacing is over, then sends them in one call", async () => {
    const { calls, batcher } = spaced();
    const all = [batcher.add("k", 1)];
    await vi.advanceTimersByTimeAsync(3);
    all.push(batcher.add("k", 2));
    await vi.advanceTimersByTimeAsync(4);
    all.push(batcher.add("k", 3), batcher.add("k", 4));
    await vi.advanceTimersByTimeAsync(2);
    // 9 ms after the first call started: still held.
    expect(calls.map((c) => c.items)).toEqual([[1]]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([
      { key: "k", at: 1_000_000, items: [1] },
      { key: "k", at: 1_000_000 + SPACING, items: [2, 3, 4] },
    ]);
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4]);
    // The next one follows the second call's start, not the first's.
    await vi.advanceTimersByTimeAsync(5);
    void batcher.add("k", 5);
    await vi.advanceTimersByTimeAsync(4);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls[2]).toEqual({ key: "k", at: 1_000_000 + 2 * SPACING, items: [5] });
  });

  it("spaces each key on its own: another key's recent call holds nothing back", async () => {
    const { calls, batcher } = spaced();
    void batcher.add("a", 1);
    await vi.advanceTimersByTimeAsync(1);
    void batcher.add("b", 2);
    expect(calls.map((c) => [c.key, c.at - 1_000_000])).toEqual([
      ["a", 0],
      ["b", 1],
    ]);
  });

  it("sends at once when a call's worth of items is waiting (maxItems), and holds the rest", async () => {
    const { calls, batcher } = spaced({ maxItems: 3 });
    void batcher.add("k", 0);
    await vi.advanceTimersByTimeAsync(1);
    for (let i = 1; i <= 4; i++) void batcher.add("k", i);
    // The third waiting item filled a call: it went 1 ms after the first, not 10.
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => [c.at - 1_000_000, c.items])).toEqual([
      [0, [0]],
      [1, [1, 2, 3]],
    ]);
    await vi.advanceTimersByTimeAsync(SPACING);
    expect(calls.map((c) => [c.at - 1_000_000, c.items])).toEqual([
      [0, [0]],
      [1, [1, 2, 3]],
      [1 + SPACING, [4]],
    ]);
  });

  it("sends at once when a call's worth of bytes is waiting (maxBytes)", async () => {
    // Item i weighs i bytes; a call holds 100.
    const { calls, batcher } = spaced({ maxBytes: 100, sizeOf: (i) => i });
    void batcher.add("k", 1);
    await vi.advanceTimersByTimeAsync(2);
    void batcher.add("k", 40);
    void batcher.add("k", 59);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => c.items)).toEqual([[1]]);
    // 40 + 59 + 1 = 100 bytes: a call's worth, sent 2 ms after the first.
    void batcher.add("k", 1);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => [c.at - 1_000_000, c.items])).toEqual([
      [0, [1]],
      [2, [40, 59, 1]],
    ]);
    expect(batcher.pendingBytes).toBe(0);
  });

  it("does not hold back a key that is hurried, now or after its call under way", async () => {
    const { calls, batcher } = spaced();
    void batcher.add("k", 1);
    await vi.advanceTimersByTimeAsync(1);
    void batcher.add("k", 2);
    batcher.hurry("k");
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => [c.at - 1_000_000, c.items])).toEqual([
      [0, [1]],
      [1, [2]],
    ]);
    // Hurrying an idle key changes nothing after it: the next call is spaced again.
    batcher.hurry("other");
    void batcher.add("k", 3);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(SPACING);
    expect(calls[2]).toEqual({ key: "k", at: 1_000_000 + 1 + SPACING, items: [3] });
  });

  it("does not wait after a call that took longer than the spacing", async () => {
    const calls: Array<{ at: number; items: number[] }> = [];
    const batcher = new KeyedBatcher<string, number>(
      async (_key, items) => {
        calls.push({ at: Date.now(), items });
        await new Promise((r) => setTimeout(r, 25));
        return undefined;
      },
      { maxItems: 100, maxBytes: 1000, sizeOf: () => 1, spacingMs: SPACING },
    );
    void batcher.add("k", 1);
    await vi.advanceTimersByTimeAsync(5);
    void batcher.add("k", 2);
    void batcher.add("k", 3);
    await vi.advanceTimersByTimeAsync(20);
    expect(calls).toEqual([
      { at: 1_000_000, items: [1] },
      { at: 1_000_025, items: [2, 3] },
    ]);
  });
});

describe("assertWithinCall", () => {
  it("takes a call of exactly 32 MiB of messages and refuses one byte more", () => {
    const message = (payload: number): Message => ({
      id: "m",
      topic: "t",
      payload: new Uint8Array(payload),
      qos: 1,
      retain: false,
    });
    const overhead = messageBytes(message(0));
    expect(() => assertWithinCall([message(RPC_CALL_LIMIT - overhead)])).not.toThrow();
    expect(() => assertWithinCall([message(RPC_CALL_LIMIT - overhead + 1)])).toThrow(RangeError);
    // Counted over the whole call: 32 messages of 1 MiB and one more byte's worth.
    const mebibyte = message(2 ** 20 - overhead);
    expect(() => assertWithinCall(Array(32).fill(mebibyte))).not.toThrow();
    expect(() => assertWithinCall([...Array(32).fill(mebibyte), message(0)])).toThrow(
      /over Cloudflare's 32 MiB/,
    );
  });
});

describe("ownedBytes", () => {
  it("copies a view out of a larger buffer (a frame), and keeps a whole buffer as it is", () => {
    const frame = new Uint8Array(1000).fill(7);
    const view = frame.subarray(10, 20);
    const owned = ownedBytes(view);
    expect(owned.buffer.byteLength).toBe(10);
    expect(Array.from(owned)).toEqual(Array.from(view));
    const whole = new Uint8Array(5);
    expect(ownedBytes(whole)).toBe(whole);
  });
});
