/**
 * A shard's delivery to a destination that does not keep up (docs/limits.md, Memory
 * bounds: QoS 0 waiting at a shard, SHARD_QOS0_BYTES a destination): QoS 0 past
 * the bound is dropped and counted `dropped_overload`; QoS 1/2 still waits in
 * the destination's batch, its publisher's acknowledgement with it.
 */
import { describe, expect, it } from "vitest";
import { type Message, messageBytes } from "../../broker/message.ts";
import { type Destination, gatewayDestination } from "../../broker/routing.ts";
import { Delivery, SHARD_QOS0_BYTES } from "../../durable-objects/topic-shard/delivery.ts";

/** A message of `qos` that weighs exactly `bytes` in a call (messageBytes). */
function weighing(bytes: number, id: string, qos: 0 | 1 = 0): Message {
  const empty: Message = { id, topic: "t", payload: new Uint8Array(0), qos, retain: false };
  return { ...empty, payload: new Uint8Array(bytes - messageBytes(empty)) };
}

/**
 * A Delivery whose destinations take nothing until released: every call stays
 * unanswered (as a gateway that does not keep up) until `release` answers them.
 */
function stalled() {
  const counted: string[] = [];
  const calls: Array<{ destination: Destination; ids: string[] }> = [];
  const waiting: Array<() => void> = [];
  const delivery = new Delivery({
    stubFor: (destination) => (messages) => {
      calls.push({ destination, ids: messages.map((m) => m.id) });
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    count: (name) => counted.push(name),
  });
  const release = () => {
    for (const resolve of waiting.splice(0)) resolve();
  };
  const dropped = () => counted.filter((n) => n === "dropped_overload").length;
  return { delivery, calls, release, dropped };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("Delivery to a destination that does not keep up", () => {
  it("drops one QoS 0 at exactly SHARD_QOS0_BYTES pending and counts it once; QoS 1 still goes in the batch", async () => {
    expect(SHARD_QOS0_BYTES).toBe(8 * 2 ** 20);
    const { delivery, calls, release, dropped } = stalled();
    const g = gatewayDestination("gateway-0");
    const pending: Promise<undefined>[] = [];
    // The first goes out at once and stays unanswered; the second waits behind it.
    // Together they are one byte short of the bound.
    delivery.send(g, weighing(2 ** 20, "a"), pending);
    delivery.send(g, weighing(SHARD_QOS0_BYTES - 2 ** 20 - 1, "b"), pending);
    expect(dropped()).toBe(0);
    // One byte short: a QoS 0 is still taken (the bound is not an item count).
    delivery.send(g, weighing(1000, "c"), pending);
    expect(dropped()).toBe(0);
    // Now past the bound: the next QoS 0 is dropped, counted once.
    delivery.send(g, weighing(1000, "d"), pending);
    expect(dropped()).toBe(1);
    // A QoS 1 is not dropped: it joins the batch, and its promise is the publisher's.
    delivery.send(g, weighing(1000, "e", 1), pending);
    expect(dropped()).toBe(1);
    expect(pending).toHaveLength(1);
    expect(calls).toEqual([{ destination: g, ids: ["a"] }]);

    release();
    await settle();
    expect(calls.map((c) => c.ids)).toEqual([["a"], ["b", "c", "e"]]);
    release();
    await Promise.all(pending);
    expect(dropped()).toBe(1);
  });

  it("counts at the bound itself: pending bytes equal to SHARD_QOS0_BYTES drop the next QoS 0", async () => {
    const { delivery, calls, release, dropped } = stalled();
    const g = gatewayDestination("gateway-0");
    const other = gatewayDestination("gateway-1");
    const pending: Promise<undefined>[] = [];
    delivery.send(g, weighing(SHARD_QOS0_BYTES, "full"), pending);
    delivery.send(g, weighing(200, "over"), pending);
    expect(dropped()).toBe(1);
    // The bound is per destination: another gateway's QoS 0 still goes.
    delivery.send(other, weighing(200, "elsewhere"), pending);
    expect(dropped()).toBe(1);
    delivery.send(g, weighing(200, "q1", 1), pending);
    expect(calls.map((c) => c.ids)).toEqual([["full"], ["elsewhere"]]);
    release();
    await settle();
    expect(calls.map((c) => c.ids)).toEqual([["full"], ["elsewhere"], ["q1"]]);
    release();
    await Promise.all(pending);
  });
});
