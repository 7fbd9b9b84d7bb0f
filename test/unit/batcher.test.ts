/** KeyedBatcher: one call in flight per key, calls bounded in items and bytes, order kept. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
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
