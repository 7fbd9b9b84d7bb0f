/**
 * Inside workerd: what one call between objects may carry (docs/limits.md, Memory bounds).
 * Cloudflare refuses a call over 32 MiB; `wrangler dev` does not, so the objects
 * refuse one themselves where it arrives (assertWithinCall), and a test that sends
 * too much fails locally too. The largest batch Queues deliver (100 messages of
 * 128 KB) is published in one call, within it.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type Message, messageBytes, RPC_CALL_LIMIT } from "../../broker/message.ts";
import type { GatewayRpc, ShardRpc } from "../../durable-objects/contracts.ts";
import { shardStub } from "../../durable-objects/stubs.ts";
import { ReasonCode } from "../../mqtt/index.ts";
import type { Env } from "../../worker/env.ts";
import worker from "../../worker/index.ts";

const bindings = env as unknown as Env;

/**
 * 300 messages whose 60,000-character topics weigh 2 bytes a character by the
 * broker's count (a topic could be any UTF-16), about 36 MiB in all, though a
 * one-byte string serializes to about 18 MB: so the call reaches the objects,
 * which must refuse it themselves.
 */
const heavyTopics = (prefix: string): Message[] =>
  Array.from({ length: 300 }, (_, i) => ({
    id: `${prefix}-${i}`,
    topic: `${prefix}/${String(i).padStart(3, "0")}/${"t".repeat(60_000)}`,
    payload: new Uint8Array(0),
    qos: 1,
    retain: false,
  }));

/**
 * What a call made inside the object answers, as text: an RPC that rejects leaks
 * an unhandled rejection under the test pool even when the test handles it
 * (workers-sdk#14736), so the refusal is caught where it happens.
 */
async function outcome<O extends ShardRpc | GatewayRpc>(
  stub: DurableObjectStub<O>,
  call: (instance: O) => Promise<unknown>,
): Promise<string> {
  return runInDurableObject(stub, (instance: O) =>
    call(instance).then(
      () => "taken",
      (err: unknown) => String(err),
    ),
  );
}

describe("a call over 32 MiB of messages", () => {
  it("is refused where it arrives, by the broker's own count, at a shard and at a gateway", async () => {
    const messages = heavyTopics("limits/over");
    const weight = messages.reduce((sum, m) => sum + messageBytes(m), 0);
    expect(weight).toBeGreaterThan(RPC_CALL_LIMIT);
    const refused = `RangeError: a call of ${weight} bytes of messages is over Cloudflare's 32 MiB`;
    const shard = bindings.TOPIC_SHARD.get(bindings.TOPIC_SHARD.idFromName("shard-0"));
    const gateway = bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
    expect(await outcome(shard, (s) => s.publish(messages))).toBe(refused);
    expect(await outcome(gateway, (g) => g.deliver(messages))).toBe(refused);
    // Within the limit it is taken: nobody subscribes, so each gets 0x10.
    expect(await shardStub(bindings, 0).publish(messages.slice(0, 250))).toEqual(
      Array(250).fill(ReasonCode.NoMatchingSubscribers),
    );
  });
});

describe("a batch from a Queue (the way in)", () => {
  it("of 100 messages of 128 KB is published whole, in one call to its shard", async () => {
    // 128 KB is the most a Queue message may hold: the body, with its JSON around the payload.
    const payload = "q".repeat(128_000 - 100);
    const bodies = Array.from({ length: 100 }, (_, i) => ({
      id: `way-in-${i}`,
      timestamp: new Date(),
      attempts: 1,
      body: { topic: `way-in/${i}`, payload, qos: 1, retain: true },
    }));
    expect(JSON.stringify(bodies[99]?.body).length).toBeLessThanOrEqual(128_000);
    const shard = shardStub(bindings, 0);
    const before = (await shard.stats()).counters;
    const batch = createMessageBatch("to-mqtt", bodies);
    const ctx = createExecutionContext();
    await worker.queue(batch, bindings);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks.length).toBe(100);
    const after = (await shard.stats()).counters;
    // One publish call (and the stats call itself), routing all 100.
    expect((after.rpc_in ?? 0) - (before.rpc_in ?? 0)).toBe(2);
    expect((after.messages_routed ?? 0) - (before.messages_routed ?? 0)).toBe(100);
    // Stored whole: every retained message comes back with its 127,900 bytes.
    const stored: Message[] = [];
    let after_: string | null = null;
    do {
      const page = await shard.retainedPage(["way-in/#"], after_);
      stored.push(...page.messages);
      after_ = page.next;
    } while (after_ !== null);
    expect(stored.map((m) => m.payload.byteLength)).toEqual(Array(100).fill(payload.length));
  });
});
