/**
 * Hardening: random and mutated packet streams over real WebSocket connections to
 * a running broker (loopback only, bounded in count and time). No object crashes,
 * well-behaved clients on the same gateway and shard keep working, and a stored
 * session and a retained message come through intact.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encode, type Packet, type ProtocolVersion } from "../../mqtt/index.ts";
import { anyPacket } from "../support/arbitraries.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { connect, Inbox, RawClient, sleep, unique } from "../support/clients.ts";

/**
 * Bounded in count, not time: every planned connection is made and every planned
 * packet sent, however busy the machine (a time budget made the amount of fuzzing,
 * and so the check of it, depend on the load).
 */
const CONNECTIONS = 200;

let broker: RunningBroker;

beforeAll(async () => {
  broker = await startBroker({
    vars: { ALLOW_ANONYMOUS: "true", TOPIC_SHARDS: "1", GATEWAYS: "1", CONNECT_TIMEOUT: "3" },
  });
}, 120_000);

afterAll(async () => {
  await broker?.stop();
});

/** One fuzzing connection's plan: maybe a valid CONNECT, then packets, some mutated, some raw noise. */
const plan = fc.record({
  version: fc.constantFrom<ProtocolVersion>(3, 4, 5),
  connectFirst: fc.boolean(),
  packets: fc.array(
    fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .constantFrom(3, 4, 5)
          .chain((v) => anyPacket(v as ProtocolVersion).map((p) => ({ p, v }))),
      },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
    ),
    { minLength: 1, maxLength: 40 },
  ),
  flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
  chunk: fc.integer({ min: 1, max: 200 }),
});

describe("wire fuzzing against the running broker", () => {
  it("survives random and mutated packet streams", async () => {
    const url = broker.url;
    const keeper = unique("keeper");
    const keep = unique("fuzz-keep");
    // A stored session with a subscription, and a retained message.
    const k = await connect(url, { protocolVersion: 4, clientId: keeper, clean: false });
    await k.subscribeAsync(`${keep}/#`, { qos: 1 });
    await k.endAsync();
    const owner = await connect(url, { protocolVersion: 5, clientId: unique("owner") });
    await owner.publishAsync(`${keep}/retained`, "intact", { qos: 1, retain: true });
    // Well-behaved clients on the same gateway and shard.
    const sub = await connect(url, { protocolVersion: 5, clientId: unique("steady") });
    const inbox = new Inbox(sub);
    await sub.subscribeAsync("steady/#", { qos: 1 });

    const samples = fc.sample(plan, CONNECTIONS);
    let packets = 0;
    let round = 0;
    for (const s of samples) {
      const raw = await RawClient.open(url, s.version);
      if (s.connectFirst) {
        raw.sendConnect(unique("fuzz"), { protocolVersion: s.version });
        packets++;
      }
      const stream: number[] = [];
      for (const item of s.packets) {
        if (item instanceof Uint8Array) stream.push(...item);
        else stream.push(...encode(item.p as Packet, item.v as ProtocolVersion));
        packets++;
      }
      for (const [at, value] of s.flips) if (stream.length > 0) stream[at % stream.length] = value;
      const bytes = Uint8Array.from(stream);
      for (let i = 0; i < bytes.length && !raw.isClosed; i += s.chunk) {
        raw.send(bytes.subarray(i, i + s.chunk));
      }
      await sleep(20);
      raw.terminate();
      round++;
      if (round % 10 === 0) {
        await owner.publishAsync(`steady/${round}`, String(round), { qos: 1 });
        await inbox.waitFor(round / 10);
      }
    }
    console.log(`wire fuzzer: ${packets} packets over ${round} connections`);

    // Well-behaved clients still work.
    await owner.publishAsync("steady/final", "still here", { qos: 1 });
    await inbox.waitFor(Math.floor(round / 10) + 1);
    expect(inbox.messages.at(-1)?.payload).toBe("still here");

    // The stored session and the retained message are intact.
    await owner.publishAsync(`${keep}/queued`, "for the keeper", { qos: 1 });
    const again = await RawClient.open(url, 4);
    expect((await again.connect(keeper, { cleanStart: false })).sessionPresent).toBe(true);
    // queued while it was away: the retained message (published after it left) and the last one
    const first = await again.next("publish");
    const second = await again.next("publish");
    expect([first, second].map((p) => new TextDecoder().decode(p.payload))).toEqual([
      "intact",
      "for the keeper",
    ]);
    again.close();
    const late = await connect(url, { protocolVersion: 5, clientId: unique("late") });
    const lateInbox = new Inbox(late);
    await late.subscribeAsync(`${keep}/retained`, { qos: 1 });
    expect((await lateInbox.waitFor(1))[0]?.payload).toBe("intact");

    // No object threw out of a handler.
    expect(broker.logs()).not.toMatch(/Uncaught|handler_error/);
    await Promise.all([owner.endAsync(), sub.endAsync(), late.endAsync()]);
  }, 120_000);
});
