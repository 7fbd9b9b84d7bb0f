/**
 * The arithmetic of `npm run capacity` (bench/capacity/model.ts), on unit counts made
 * up for the test so that every figure can be worked out by hand.
 */
import { describe, expect, it } from "vitest";
import {
  againstHalf,
  awakeObjects,
  awsBill,
  awsMessaging,
  awsUnits,
  callsPerMessage,
  cloudflareBill,
  deployRecovery,
  emqxBill,
  frameBytes,
  HALF,
  hop,
  loadAt,
  publishBytes,
  RAW_CLIENT,
  recommend,
  type UnitCosts,
  unitCosts,
  type Workload,
} from "../../bench/capacity/model.ts";
import { MONTH_SECONDS } from "../../bench/capacity/prices.ts";
import type { MeasuredUnits, MessageRow, OpUnits } from "../../bench/capacity/units.ts";
import { HELD_BUDGET_BYTES } from "../../durable-objects/gateway/outbound.ts";

const op = (o: Partial<OpUnits> = {}): OpUnits => ({
  requests: 0,
  wsIn: 0,
  rowsWritten: 0,
  logLines: 0,
  gatewayEvents: 0,
  shardCallsIn: 0,
  registryCalls: 0,
  sessionCalls: 0,
  ...o,
});

/** One frame a packet, one call a message on each hop, nothing else billed: each figure below by hand. */
const simple: UnitCosts = {
  client: "test",
  measuredAt: "test",
  basis: "test",
  frames: {
    4: { connect: 1, subscribe: 1, publish: 1, puback: 1 },
    5: { connect: 1, subscribe: 1, publish: 1, puback: 1 },
  },
  gatewayToShard: { measuredCalls: 1, measuredPairRate: 1, window: 0 },
  shardToGateway: { measuredCalls: 1, measuredPairRate: 1, window: 0 },
  perDelivery: { clean: { otherRequests: 0, rows: 0 }, persistent: { otherRequests: 1, rows: 2 } },
  connect: {
    clean: {
      connect: op({ requests: 3, wsIn: 2, gatewayEvents: 4, shardCallsIn: 1, registryCalls: 1 }),
      disconnect: op(),
    },
    persistent: {
      connect: op({ requests: 3, wsIn: 2, gatewayEvents: 4, shardCallsIn: 1, registryCalls: 1 }),
      disconnect: op(),
    },
  },
  ping: { requests: 0, wsIn: 1 },
  heapPerConnection: 1024,
  cpuMsPerEvent: 0.1,
};

const workload = (w: Partial<Workload> = {}): Workload => ({
  clients: 1_000,
  messagesPerSecond: 100,
  fanOut: 2,
  qos1Share: 1,
  persistentShare: 0,
  keepAliveSeconds: 60,
  payloadBytes: 64,
  topicBytes: 32,
  reconnectsPerMonth: 0,
  rulesShare: 0,
  version: 4,
  ...w,
});

describe("batching between objects", () => {
  it("solves the window from calls measured at a pair rate, and predicts 1 / (1 + r·w) at another rate", () => {
    // 100 messages in 10 s over 5 pairs = 2 msg/s a pair; 50 calls: 0.5 a message → w = (1/0.5 − 1)/2 = 0.5 s.
    const h = hop(50, 100, 10, 5);
    expect(h.measuredCalls).toBe(0.5);
    expect(h.measuredPairRate).toBe(2);
    expect(h.window).toBe(0.5);
    expect(callsPerMessage(h, 2)).toBe(0.5);
    expect(callsPerMessage(h, 0.1)).toBeCloseTo(1 / 1.05, 12);
    expect(callsPerMessage(h, 18)).toBeCloseTo(0.1, 12);
  });

  it("a hop measured at one call a message or more does not batch at any rate", () => {
    const h = hop(120, 100, 10, 5);
    expect(h.window).toBe(0);
    expect(callsPerMessage(h, 1_000)).toBe(1.2);
  });
});

describe("AWS IoT Core", () => {
  it("meters a message in 5 KB units, at least one", () => {
    expect([0, 1, 5_120, 5_121, 10_240, 10_241].map(awsUnits)).toEqual([1, 1, 1, 2, 2, 3]);
  });

  it("prices messages by tier: $1.00 a million to 1 billion, $0.80 to 5 billion, $0.70 beyond", () => {
    expect(awsMessaging(1e6)).toBeCloseTo(1, 9);
    expect(awsMessaging(1e9)).toBeCloseTo(1_000, 6);
    expect(awsMessaging(2e9)).toBeCloseTo(1_800, 6);
    expect(awsMessaging(6e9)).toBeCloseTo(1_000 + 3_200 + 700, 6);
  });

  it("counts publishes, deliveries, devices' PUBACKs and connection-minutes", () => {
    // 10 msg/s, fan-out 2, QoS 1: per second 10 publishes + 20 deliveries + 20 PUBACKs = 50 messages.
    const b = awsBill(workload({ clients: 100, messagesPerSecond: 10 }));
    const messages = 50 * MONTH_SECONDS;
    expect(b.lines[0]?.units).toBe(messages);
    expect(b.lines[0]?.dollars).toBeCloseTo(awsMessaging(messages), 6);
    // 100 clients connected all month: 100 × 43,200 minutes at $0.08 a million.
    expect(b.lines[1]?.units).toBe(100 * 43_200);
    expect(b.lines[1]?.dollars).toBeCloseTo(100 * 43_200 * 0.08e-6, 9);
  });

  it("a 6 KB payload is two units a message", () => {
    const one = awsBill(workload({ payloadBytes: 1_000, qos1Share: 0 })).lines[0]?.units ?? 0;
    const two = awsBill(workload({ payloadBytes: 6_000, qos1Share: 0 })).lines[0]?.units ?? 0;
    expect(two).toBe(2 * one);
  });
});

describe("EMQX Serverless", () => {
  it("bills session-minutes past the free million at $2.00 a million, and says when a deployment's quota is passed", () => {
    const b = emqxBill(workload({ clients: 1_000, messagesPerSecond: 2_000 }));
    expect(b.lines[0]?.units).toBe(43_200_000);
    expect(b.lines[0]?.dollars).toBeCloseTo((43_200_000 - 1_000_000) * 2e-6, 9);
    expect(b.notes.join(" ")).toContain("past a Serverless deployment's quota");
  });

  it("sizes a PUBLISH and its WebSocket frame byte by byte", () => {
    // 3.1.1 QoS 1, 32-byte topic, 64-byte payload: 2 + 32 + 2 + 64 = 100 remaining, 1 + 1 + 100 in all.
    expect(publishBytes(32, 64, 1, 4)).toBe(102);
    expect(publishBytes(32, 64, 0, 5)).toBe(1 + 1 + 2 + 32 + 1 + 64);
    expect(publishBytes(0, 200, 0, 4)).toBe(1 + 2 + 202);
    expect(frameBytes(102, true)).toBe(108);
    expect(frameBytes(102, false)).toBe(104);
    expect(frameBytes(200, false)).toBe(204);
  });
});

describe("Nimbus on Cloudflare", () => {
  it("a workload inside every allowance costs the $5 minimum (objects billed while busy)", () => {
    const w = workload({ clients: 10, messagesPerSecond: 0.01 });
    expect(cloudflareBill(w, simple, { shards: 1, gateways: 1 }, "busy").total).toBe(5);
    // Awake all month, a gateway and a shard are 663,552 GB-s: past the 400,000 included.
    expect(cloudflareBill(w, simple, { shards: 1, gateways: 1 }, "awake").total).toBeCloseTo(
      5 + (2 * 0.128 * MONTH_SECONDS - 400_000) * 12.5e-6,
      9,
    );
  });

  it("duration: every object awake all month, or busy for the CPU of its events", () => {
    // 6,000 idle clients on 2 gateways: 50 pings a second each, 0.1 ms each: 0.5% busy; the shard has nothing.
    const l = loadAt(workload({ clients: 6_000, messagesPerSecond: 0 }), simple, { shards: 1, gateways: 2 });
    expect(awakeObjects(l, simple, "awake")).toBe(3);
    expect(awakeObjects(l, simple, "busy")).toBeCloseTo(2 * 0.005, 12);
    expect(awakeObjects(l, { ...simple, cpuMsPerEvent: 100 }, "busy")).toBe(2);
  });

  it("bills requests, incoming messages at 20 to a request, duration and rows past the allowances", () => {
    const w = workload({ persistentShare: 1 });
    const b = cloudflareBill(w, simple, { shards: 1, gateways: 1 });
    // Per second: 100 publish calls + 200 delivery calls + 200 other (persistent) = 500 calls;
    // 100 PUBLISH + 200 PUBACK frames = 300 messages in; no pings (each client sends 0.3 a second).
    const requests = (500 + 300 / 20) * MONTH_SECONDS;
    const byName = (start: string) => b.lines.find((l) => l.component.startsWith(start));
    expect(byName("Durable Objects requests")?.units).toBeCloseTo(requests, 3);
    expect(byName("Durable Objects requests")?.dollars).toBeCloseTo((requests - 1e6) * 0.15e-6, 6);
    const gbs = 2 * 0.128 * MONTH_SECONDS;
    expect(byName("Durable Objects duration")?.dollars).toBeCloseTo((gbs - 400_000) * 12.5e-6, 6);
    const rows = 200 * 2 * MONTH_SECONDS;
    expect(byName("SQLite rows")?.dollars).toBeCloseTo((rows - 50e6) * 1e-6, 6);
    expect(b.total).toBeCloseTo(
      b.lines.reduce((s, l) => s + l.dollars, 0),
      9,
    );
    expect(b.perMillion).toBeCloseTo((b.total / (200 * MONTH_SECONDS)) * 1e6, 9);
  });

  it("idle clients ping once a keep-alive: one incoming message each, an event at their gateway", () => {
    const l = loadAt(workload({ clients: 6_000, messagesPerSecond: 0 }), simple, { shards: 1, gateways: 2 });
    expect(l.pings).toBeCloseTo(100, 9);
    expect(l.perGateway.events).toBeCloseTo(50, 9);
    expect(l.perGateway.sockets).toBe(3_000);
    expect(l.perGateway.heapBytes).toBe(3_000 * 1024 + HELD_BUDGET_BYTES);
  });
});

describe("the layout", () => {
  it("for 1,000,000 clients and 100,000 msg/s keeps every object at or under half of each limit", () => {
    const w = workload({ clients: 1_000_000, messagesPerSecond: 100_000 });
    const layout = recommend(w, simple);
    expect(layout).toBeDefined();
    if (layout === undefined) return;
    const shares = againstHalf(loadAt(w, simple, layout));
    for (const [what, share] of Object.entries(shares)) expect(share, what).toBeLessThanOrEqual(1);
    // 100,000 publish calls a second need at least 200 shards at 500 each.
    expect(layout.shards).toBeGreaterThanOrEqual(200);
    // 100,000 PUBLISH + 200,000 PUBACK frames + 200,000 delivery calls: at least 1,000 gateways at 500 events.
    expect(layout.gateways).toBeGreaterThanOrEqual(1_000);
  });

  it("grows gateways for sockets: 40,000 idle clients need 3 gateways of 16,384 sockets", () => {
    const layout = recommend(
      workload({ clients: 40_000, messagesPerSecond: 0, keepAliveSeconds: 1_000 }),
      simple,
    );
    expect(layout).toEqual({ shards: 1, gateways: 3 });
  });

  it("with a bound on deploy recovery, grows the kind of object that bounds it", () => {
    // 100,000 idle clients: 7 gateways for the sockets and 1 shard take 114 s and 200 s to see everyone back.
    const w = workload({ clients: 100_000, messagesPerSecond: 0, keepAliveSeconds: 1_000 });
    expect(recommend(w, simple)).toEqual({ shards: 1, gateways: 7 });
    const layout = recommend(w, simple, 60);
    expect(layout).toEqual({ shards: 4, gateways: 14 });
    if (layout !== undefined) expect(deployRecovery(w, simple, layout).seconds).toBeLessThanOrEqual(60);
  });

  it("finds none when the settings' largest layout is not enough", () => {
    expect(recommend(workload({ clients: 1_000, messagesPerSecond: 1e9 }), simple)).toBeUndefined();
  });

  it("a deploy's reconnects: time bound by the busiest kind of object at half its limit", () => {
    // 640,000 clients, 64 registries, one call each: 10,000 calls a registry, 20 s at 500 a second.
    const r = deployRecovery(workload({ clients: 640_000 }), simple, { shards: 1_000, gateways: 10_000 });
    expect(r.boundBy).toBe("registries (64)");
    expect(r.seconds).toBeCloseTo(20, 9);
    expect(HALF.events).toBe(500);
  });
});

describe("unit costs from a benchmark's measurements", () => {
  const row = (o: Partial<MessageRow>): MessageRow => ({
    client: "lib",
    layout: { shards: 1, gateways: 1 },
    sessions: "clean",
    traffic: "spread",
    slots: 10,
    fanOut: 2,
    seconds: 10,
    published: 100,
    delivered: 200,
    complete: true,
    requests: 300,
    wsIn: 300,
    rowsWritten: 0,
    logLines: 0,
    gatewayCallsIn: 200,
    shardCallsIn: 100,
    registryCalls: 0,
    sessionCalls: 0,
    gatewayEvents: 500,
    busiestGatewayEvents: 50,
    busiestShardCalls: 10,
    latencyP50: 1,
    latencyP99: 2,
    dollarsPerMillion: 0,
    workerdCpuMs: 0,
    ...o,
  });
  const measured: MeasuredUnits = {
    measuredAt: "then",
    machine: "here",
    quick: false,
    frames: { lib: { "3.1.1": { connect: 9, subscribe: 9, publish: 6, puback: 3, overall: 5 } } },
    messages: [
      row({}),
      // The largest layout is the one used: 4 pairs, 10 msg/s → 2.5 a pair; 50 calls for 100 publishes.
      row({ layout: { shards: 2, gateways: 2 }, shardCallsIn: 50, gatewayCallsIn: 200, requests: 260 }),
      row({ layout: { shards: 2, gateways: 2 }, traffic: "burst", shardCallsIn: 1 }),
      row({ layout: { shards: 2, gateways: 2 }, sessions: "persistent", rowsWritten: 1_000, requests: 450 }),
    ],
    connects: [
      {
        layout: { shards: 2, gateways: 2 },
        sessions: "clean",
        clients: 10,
        connect: op({ requests: 3 }),
        disconnect: op(),
        heapBytes: 2_048,
      },
    ],
    pings: [],
  };

  it("takes the spread rows at the largest layout, solves each hop's window, and prices persistent rows apart", () => {
    const u = unitCosts(measured, "lib");
    expect(u.gatewayToShard.measuredCalls).toBe(0.5);
    expect(u.gatewayToShard.measuredPairRate).toBe(2.5);
    expect(u.gatewayToShard.window).toBeCloseTo(0.4, 12);
    expect(u.shardToGateway.window).toBe(0);
    expect(u.perDelivery.clean).toEqual({ otherRequests: (260 - 200 - 50) / 200, rows: 0 });
    expect(u.perDelivery.persistent).toEqual({ otherRequests: (450 - 200 - 100) / 200, rows: 5 });
    // 5.0 was not measured: 3.1.1's frames stand in.
    expect(u.frames[5].publish).toBe(6);
    expect(u.heapPerConnection).toBe(2_048);
    expect(u.connect.persistent).toBe(u.connect.clean);
  });

  it("with the raw client measured, takes the broker's units from its runs and only the frames from the library", () => {
    const withRaw: MeasuredUnits = {
      ...measured,
      frames: {
        ...measured.frames,
        [RAW_CLIENT]: { "3.1.1": { connect: 1, subscribe: 1, publish: 1, puback: 1, overall: 1 } },
      },
      messages: [
        ...measured.messages,
        row({ client: RAW_CLIENT, layout: { shards: 2, gateways: 2 }, shardCallsIn: 100 }),
      ],
    };
    const u = unitCosts(withRaw, "lib");
    expect(u.frames[4].publish).toBe(6);
    expect(u.gatewayToShard.measuredCalls).toBe(1);
    expect(u.gatewayToShard.window).toBe(0);
    expect(unitCosts(withRaw, "lib", "lib").gatewayToShard.measuredCalls).toBe(0.5);
  });

  it("refuses a client library the file does not hold", () => {
    expect(() => unitCosts(measured, "other")).toThrow('no measurement of "other"');
  });
});
