/**
 * The capacity and cost model behind `npm run capacity`: from a workload and the unit
 * counts the benchmark measured (bench/units.json), the load on each object of a
 * layout against Cloudflare's limits, the layout to choose, and the monthly bill by
 * component with the Workers Paid allowances and minimum; beside it AWS IoT Core and
 * EMQX Serverless for the same workload. Pure arithmetic, unit-tested
 * (test/unit/capacity.test.ts); bench/capacity/prices.ts says where each price is from.
 *
 * Calls between objects: the benchmark measured, per hop (gateway → shard for each
 * published message, shard → gateway for each delivery), the calls per message at the
 * rate each pair of objects saw. A batcher that sends what piled up while its last
 * call was in flight sends 1 / (1 + r·w) calls per message when a pair carries r
 * messages a second and a call takes w seconds; w is solved from the measurement and
 * the same formula gives the calls at another layout's pair rate (a measurement of one
 * call or more per message gives w = 0: no batching, whatever the rate).
 */
import { REGISTRY_BUCKETS } from "../../broker/routing.ts";
import { HELD_BUDGET_BYTES } from "../../durable-objects/gateway/outbound.ts";
import { AWS_IOT, CLOUDFLARE, CLOUDFLARE_LIMITS, EMQX_SERVERLESS, MONTH_SECONDS } from "./prices.ts";

import type { ConnectRow, Layout, MeasuredUnits, MessageRow, OpUnits, Sessions } from "./units.ts";

export interface Workload {
  clients: number;
  /** PUBLISH packets into the broker, all clients together. */
  messagesPerSecond: number;
  /** Deliveries per published message. */
  fanOut: number;
  /** Share of messages at QoS 1 (the rest QoS 0). */
  qos1Share: number;
  /** Share of clients with persistent sessions. */
  persistentShare: number;
  keepAliveSeconds: number;
  payloadBytes: number;
  topicBytes: number;
  /** Connects a client makes a month (deploys and network changes each reconnect every client). */
  reconnectsPerMonth: number;
  /** Share of published messages a rule forwards (AWS rules, EMQX rule actions; Nimbus rules are not priced here). */
  rulesShare: number;
  version: 4 | 5;
}

const money = (x: number) =>
  `$${x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

/** Half of each platform limit: the most the model lets any object carry. */
export const HALF = {
  events: CLOUDFLARE_LIMITS.eventsPerObject / 2,
  sockets: CLOUDFLARE_LIMITS.socketsPerObject / 2,
  heapBytes: CLOUDFLARE_LIMITS.isolateBytes / 2,
  subrequests: CLOUDFLARE_LIMITS.subrequestsPerRequest / 2,
} as const;

/** The settings' own bounds (broker/config.ts). */
export const MAX_LAYOUT: Layout = { shards: 1024, gateways: 4096 };

/** One hop between objects: the calls per message measured at a pair rate, and the batching window solved from it. */
export interface Hop {
  measuredCalls: number;
  measuredPairRate: number;
  /** Seconds; 0 when the measurement showed no batching. */
  window: number;
}

export function hop(calls: number, messages: number, seconds: number, pairs: number): Hop {
  const perMessage = messages > 0 ? calls / messages : 1;
  const pairRate = seconds > 0 && pairs > 0 ? messages / seconds / pairs : 0;
  const window = perMessage < 1 && pairRate > 0 ? (1 / perMessage - 1) / pairRate : 0;
  return { measuredCalls: perMessage, measuredPairRate: pairRate, window };
}

/** Calls per message on `h` when each pair carries `pairRate` messages a second. */
export function callsPerMessage(h: Hop, pairRate: number): number {
  if (h.window === 0) return h.measuredCalls;
  return 1 / (1 + pairRate * h.window);
}

type ConnectUnits = { connect: OpUnits; disconnect: OpUnits };

/** What one client library costs, per unit, as measured. */
export interface UnitCosts {
  client: string;
  measuredAt: string;
  /** Which measurements the model uses. */
  basis: string;
  frames: Record<4 | 5, { connect: number; subscribe: number; publish: number; puback: number }>;
  gatewayToShard: Hop;
  shardToGateway: Hop;
  /** Per QoS 1 delivery: billed requests besides the two hops (sessions, registries, alarms), and rows written. */
  perDelivery: Record<Sessions, { otherRequests: number; rows: number }>;
  connect: Record<Sessions, ConnectUnits>;
  ping: { requests: number; wsIn: number };
  heapPerConnection: number;
  /**
   * CPU per event (a gateway's WebSocket message or call, a shard's call), ms, of the
   * busiest workerd under wrangler dev: what an object is at least busy with per event.
   */
  cpuMsPerEvent: number;
}

const size = (l: Layout) => l.shards * l.gateways;
const largest = <T extends { layout: Layout }>(rows: T[]): T | undefined =>
  rows.reduce<T | undefined>(
    (best, r) => (best === undefined || size(r.layout) > size(best.layout) ? r : best),
    undefined,
  );

/** The client whose runs give the broker's own units: one frame a packet, so the client adds no load of its own. */
export const RAW_CLIENT = "raw (one frame a packet)";

/**
 * The unit costs of `client` from a benchmark's measurements: its frames per packet,
 * and the broker's units (calls on each hop, other requests and rows per delivery, CPU
 * per event) from `broker`'s spread-traffic runs at the largest layout measured. The
 * broker's units come from the raw client unless told: a library that sends more
 * frames overloads a small layout under wrangler dev, and an overloaded broker batches
 * more, which would be taken for its behaviour at any load.
 */
export function unitCosts(
  m: MeasuredUnits,
  client: string,
  broker = m.frames[RAW_CLIENT] ? RAW_CLIENT : client,
): UnitCosts {
  const frames = m.frames[client];
  if (frames === undefined) {
    throw new Error(
      `no measurement of ${JSON.stringify(client)}; measured: ${Object.keys(m.frames).join(", ")}`,
    );
  }
  const spread = (sessions: Sessions): MessageRow | undefined =>
    largest(
      m.messages.filter(
        (r) => r.client === broker && r.traffic === "spread" && r.sessions === sessions && r.delivered > 0,
      ),
    );
  const clean = spread("clean");
  if (clean === undefined)
    throw new Error(`no spread-traffic run of ${client} with clean sessions in the units file`);
  const persistent = spread("persistent") ?? clean;
  const pairs = size(clean.layout);
  const perDelivery = (r: MessageRow) => ({
    otherRequests: (r.requests - r.gatewayCallsIn - r.shardCallsIn) / r.delivered,
    rows: r.rowsWritten / r.delivered,
  });
  const connectOf = (sessions: Sessions): ConnectRow | undefined =>
    largest(m.connects.filter((c) => c.sessions === sessions));
  const cleanConnect = connectOf("clean");
  if (cleanConnect === undefined) throw new Error("no connect measurement in the units file");
  const persistentConnect = connectOf("persistent") ?? cleanConnect;
  const ping = largest(m.pings) ?? { requests: 0, wsIn: 1 };
  const heaps = m.connects.map((c) => c.heapBytes).filter(Number.isFinite);
  const f = (v: "3.1.1" | "5.0") => {
    const x = frames[v] ?? frames["3.1.1"] ?? frames["5.0"];
    if (x === undefined) throw new Error(`no frame counts for ${client}`);
    return { connect: x.connect, subscribe: x.subscribe, publish: x.publish, puback: x.puback };
  };
  const layoutName = (l: Layout) => `${l.shards}×${l.gateways}`;
  return {
    client,
    measuredAt: m.measuredAt,
    basis: `frames of ${client}; the broker's units from ${broker}, spread traffic at ${layoutName(clean.layout)} (${Math.round(clean.published / clean.seconds)} msg/s)${
      persistent === clean ? "; no persistent run: persistent priced as clean" : ""
    }${m.quick ? "; a quick run (small sizes)" : ""}`,
    frames: { 4: f("3.1.1"), 5: f("5.0") },
    gatewayToShard: hop(clean.shardCallsIn, clean.published, clean.seconds, pairs),
    shardToGateway: hop(clean.gatewayCallsIn, clean.delivered, clean.seconds, pairs),
    perDelivery: { clean: perDelivery(clean), persistent: perDelivery(persistent) },
    connect: { clean: cleanConnect, persistent: persistentConnect },
    ping: { requests: ping.requests, wsIn: ping.wsIn },
    heapPerConnection: heaps.length > 0 ? Math.max(...heaps) : Number.NaN,
    cpuMsPerEvent: clean.workerdCpuMs / Math.max(1, clean.gatewayEvents + clean.shardCallsIn),
  };
}

/** Blend of a clean and a persistent figure by the workload's share of persistent sessions. */
const blend = (w: Workload, f: (s: Sessions) => number) =>
  (1 - w.persistentShare) * f("clean") + w.persistentShare * f("persistent");

/** Per second, the whole deployment, at a layout. */
export interface Load {
  layout: Layout;
  deliveries: number;
  qos1Deliveries: number;
  pings: number;
  connects: number;
  gatewayToShardCalls: number;
  shardToGatewayCalls: number;
  /** Billed requests besides the two hops: sessions, registries, alarms, upgrades, disconnects. */
  otherRequests: number;
  wsIn: number;
  rowsWritten: number;
  logLines: number;
  perGateway: { events: number; sockets: number; heapBytes: number };
  perShard: { calls: number };
  perRegistry: { calls: number };
  /** Calls one event may make: a shard's delivery batch to every gateway; a stats read to every object. */
  subrequests: { delivery: number; stats: number };
}

export function loadAt(w: Workload, u: UnitCosts, layout: Layout): Load {
  const { shards: S, gateways: G } = layout;
  const frames = u.frames[w.version];
  const M = w.messagesPerSecond;
  const deliveries = M * w.fanOut;
  const qos1Deliveries = deliveries * w.qos1Share;
  // A client pings only when it sent nothing else for a keep-alive interval (MQTT-3.1.2-23).
  const sentPerClient = (M + qos1Deliveries) / w.clients;
  const pings = w.clients * Math.max(0, 1 / w.keepAliveSeconds - sentPerClient);
  const connects = (w.clients * w.reconnectsPerMonth) / MONTH_SECONDS;
  const op = (s: Sessions) => u.connect[s];
  const perConnect = (k: keyof OpUnits) => blend(w, (s) => op(s).connect[k] + op(s).disconnect[k]);
  const connectFrames = frames.connect + frames.subscribe;
  const gatewayToShardCalls = M * callsPerMessage(u.gatewayToShard, M / (G * S));
  const shardToGatewayCalls = deliveries * callsPerMessage(u.shardToGateway, deliveries / (G * S));
  const messageFrames = M * frames.publish + qos1Deliveries * frames.puback;
  // A connect's gateway events, with the library's frames for CONNECT and SUBSCRIBE in place of the raw client's.
  const connectEvents = perConnect("gatewayEvents") - perConnect("wsIn") + connectFrames;
  const connectShardCalls = perConnect("shardCallsIn");
  const connectRequests = perConnect("requests");
  return {
    layout,
    deliveries,
    qos1Deliveries,
    pings,
    connects,
    gatewayToShardCalls,
    shardToGatewayCalls,
    otherRequests:
      qos1Deliveries * blend(w, (s) => u.perDelivery[s].otherRequests) +
      connects * connectRequests +
      pings * u.ping.requests,
    wsIn: messageFrames + pings * u.ping.wsIn + connects * connectFrames,
    rowsWritten:
      qos1Deliveries * blend(w, (s) => u.perDelivery[s].rows) + connects * perConnect("rowsWritten"),
    logLines: connects * perConnect("logLines"),
    perGateway: {
      events: (messageFrames + pings * u.ping.wsIn + shardToGatewayCalls + connects * connectEvents) / G,
      sockets: w.clients / G,
      heapBytes: (w.clients / G) * u.heapPerConnection + HELD_BUDGET_BYTES,
    },
    perShard: { calls: (gatewayToShardCalls + connects * connectShardCalls) / S },
    perRegistry: { calls: (connects * perConnect("registryCalls")) / REGISTRY_BUCKETS },
    subrequests: { delivery: G, stats: G + S },
  };
}

/** Each object's load as a share of half its platform limit (1 = at half the limit). */
export function againstHalf(l: Load): Record<string, number> {
  return {
    "gateway events / s": l.perGateway.events / HALF.events,
    "gateway sockets": l.perGateway.sockets / HALF.sockets,
    "gateway heap": l.perGateway.heapBytes / HALF.heapBytes,
    "shard calls / s": l.perShard.calls / HALF.events,
    "registry calls / s": l.perRegistry.calls / HALF.events,
    "subrequests of a delivery": l.subrequests.delivery / HALF.subrequests,
    "subrequests of a stats read": l.subrequests.stats / HALF.subrequests,
  };
}

/**
 * The smallest layout that keeps every gateway and shard at or under half of each
 * limit: gateways for sockets, heap and events; shards for calls. Fewer objects mean
 * more messages per pair and so more batching, so gateways and shards are grown
 * together until neither needs more. With `recoverySeconds`, also enough of them that
 * every client is back within that time after a deploy (registries, 64 of them, are
 * not grown: a recovery they bound stays as long). Undefined when even the settings'
 * largest layout leaves an object over half a limit.
 */
export function recommend(
  w: Workload,
  u: UnitCosts,
  recoverySeconds = Number.POSITIVE_INFINITY,
): Layout | undefined {
  let layout: Layout = {
    shards: 1,
    gateways: Math.max(
      1,
      Math.ceil(w.clients / HALF.sockets),
      Number.isFinite(u.heapPerConnection)
        ? Math.ceil((w.clients * u.heapPerConnection) / Math.max(1, HALF.heapBytes - HELD_BUDGET_BYTES))
        : 1,
    ),
  };
  for (let step = 0; step < 200; step++) {
    const l = loadAt(w, u, layout);
    let g = Math.max(l.perGateway.events / HALF.events, l.perGateway.heapBytes / HALF.heapBytes);
    let s = l.perShard.calls / HALF.events;
    const recovery = deployRecovery(w, u, layout);
    const late = recovery.seconds / recoverySeconds;
    if (late > 1 && recovery.boundBy === "gateways") g = Math.max(g, late);
    if (late > 1 && recovery.boundBy === "shards") s = Math.max(s, late);
    if (g <= 1 && s <= 1) return within(l) ? layout : undefined;
    layout = {
      gateways: g > 1 ? Math.ceil(layout.gateways * Math.min(g, 2)) : layout.gateways,
      shards: s > 1 ? Math.ceil(layout.shards * Math.min(s, 2)) : layout.shards,
    };
    if (layout.gateways > MAX_LAYOUT.gateways || layout.shards > MAX_LAYOUT.shards) return undefined;
  }
  return undefined;
}

const within = (l: Load) => Object.values(againstHalf(l)).every((x) => x <= 1);

export interface BillLine {
  component: string;
  /** Units used in the month. */
  units: number;
  included: number;
  dollars: number;
}
export interface Bill {
  lines: BillLine[];
  total: number;
  /** Per million delivered messages. */
  perMillion: number;
  notes: string[];
}

/** `units` past `included`, at `price` each. */
export const overage = (units: number, tier: { included: number; price: number }) =>
  Math.max(0, units - tier.included) * tier.price;

const line = (component: string, units: number, tier: { included: number; price: number }): BillLine => ({
  component,
  units,
  included: tier.included,
  dollars: overage(units, tier),
});

const finish = (lines: BillLine[], deliveredPerMonth: number, notes: string[]): Bill => {
  const total = lines.reduce((s, l) => s + l.dollars, 0);
  return {
    lines,
    total,
    perMillion: deliveredPerMonth > 0 ? (total / deliveredPerMonth) * 1e6 : Number.NaN,
    notes,
  };
};

/**
 * Object-seconds of duration a second: "awake", every gateway and shard billed all the
 * time (an upper bound, reached by an object near its limit of events); "busy", each
 * billed only for the CPU time its events took here (a lower bound: an object is also
 * billed while it waits on a call or storage).
 */
export function awakeObjects(l: Load, u: UnitCosts, duration: "awake" | "busy"): number {
  const objects = l.layout.gateways + l.layout.shards;
  if (duration === "awake" || !Number.isFinite(u.cpuMsPerEvent)) return objects;
  const share = (eventsPerSecond: number) => Math.min(1, (eventsPerSecond * u.cpuMsPerEvent) / 1000);
  return l.layout.gateways * share(l.perGateway.events) + l.layout.shards * share(l.perShard.calls);
}

/** A month on Cloudflare's Workers Paid plan at `layout`; duration as `awakeObjects` counts it. */
export function cloudflareBill(
  w: Workload,
  u: UnitCosts,
  layout: Layout,
  duration: "awake" | "busy" = "awake",
): Bill {
  const l = loadAt(w, u, layout);
  const month = (x: number) => x * MONTH_SECONDS;
  const calls = month(l.gatewayToShardCalls + l.shardToGatewayCalls + l.otherRequests);
  const wsIn = month(l.wsIn);
  const billedRequests = calls + wsIn / CLOUDFLARE.wsMessagesPerRequest;
  const objects = awakeObjects(l, u, duration);
  const busy = month(awakeObjects(l, u, "busy") * CLOUDFLARE.objectGb);
  return finish(
    [
      {
        component: "Workers Paid plan (minimum, includes the allowances below)",
        units: 1,
        included: 0,
        dollars: CLOUDFLARE.monthlyMinimum,
      },
      line(
        "Durable Objects requests (calls + incoming WebSocket messages / 20)",
        billedRequests,
        CLOUDFLARE.doRequest,
      ),
      line(
        `Durable Objects duration, GB-s (${objects} gateways and shards awake all month)`,
        month(objects * CLOUDFLARE.objectGb),
        CLOUDFLARE.gbSecond,
      ),
      line("SQLite rows written", month(l.rowsWritten), CLOUDFLARE.rowWritten),
      line("Worker requests (WebSocket upgrades)", month(l.connects), CLOUDFLARE.workerRequest),
      line("Workers Logs lines", month(l.logLines), CLOUDFLARE.logLine),
    ],
    month(l.deliveries),
    [
      duration === "awake"
        ? `duration counts every gateway and shard awake the whole month: an upper bound (an object between events with nothing in flight is not billed); billed only for the CPU its events took here, ${busy.toExponential(2)} GB-s, it would cost ${money(overage(busy, CLOUDFLARE.gbSecond))}`
        : "duration counts each object busy only for the CPU time of its events (a lower bound)",
      "registries and sessions, awake only around connects and queued deliveries, are left out of duration",
      "not priced: rows read ($0.001 a million past 25 billion), SQLite storage of persistent sessions past 5 GB-month, the Worker's CPU time for upgrades",
      "QoS 0 deliveries: no PUBACK frame and no rows; calls as for QoS 1",
      ...(l.logLines === 0 && l.connects > 0
        ? [
            "log lines as measured, with the benchmark's LOG_LEVEL=warn; at the default (info) the broker writes about two a connection",
          ]
        : []),
    ],
  );
}

/** AWS IoT Core's message price for `messages` in a month, tier by tier. */
export function awsMessaging(messages: number): number {
  let dollars = 0;
  let from = 0;
  for (const tier of AWS_IOT.messageTiers) {
    const inTier = Math.max(0, Math.min(messages, tier.upTo) - from);
    dollars += inTier * tier.price;
    from = tier.upTo;
    if (messages <= from) break;
  }
  return dollars;
}

/** Metered 5 KB units of a message of `bytes` (at least one). */
export const awsUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / AWS_IOT.messageUnit));

export function awsBill(w: Workload): Bill {
  const month = (x: number) => x * MONTH_SECONDS;
  const units = awsUnits(w.payloadBytes + w.topicBytes);
  const deliveries = w.messagesPerSecond * w.fanOut;
  // A device's PUBACK is metered (3.1.1: as one 5 KB message); the service's PUBACK is not.
  const messages = month(
    w.messagesPerSecond * units +
      deliveries * units +
      deliveries * w.qos1Share +
      ((w.clients * w.reconnectsPerMonth) / MONTH_SECONDS) * 2,
  );
  const connectionMinutes = (w.clients * MONTH_SECONDS) / 60;
  const rules = month(w.messagesPerSecond * w.rulesShare);
  return finish(
    [
      {
        component: `messages (5 KB units: publishes, deliveries, devices' PUBACKs, CONNECT and SUBSCRIBE)`,
        units: messages,
        included: 0,
        dollars: awsMessaging(messages),
      },
      {
        component: "connectivity, connection-minutes",
        units: connectionMinutes,
        included: 0,
        dollars: connectionMinutes * AWS_IOT.connectionMinute,
      },
      {
        component: "rules triggered and actions",
        units: rules,
        included: 0,
        dollars: rules * (AWS_IOT.ruleTriggered + AWS_IOT.ruleAction),
      },
    ],
    month(deliveries),
    ["US East prices; PINGREQ is free; the 12-month free tier is left out"],
  );
}

/** Bytes of an MQTT PUBLISH (fixed header and all). */
export function publishBytes(topic: number, payload: number, qos: number, version: 4 | 5): number {
  const rest = 2 + topic + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payload;
  return 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
}

/** A WebSocket frame around `n` bytes: header, and the client's 4-byte mask. */
export const frameBytes = (n: number, fromClient: boolean) =>
  n + 2 + (n > 125 ? 2 : 0) + (n > 65_535 ? 6 : 0) + (fromClient ? 4 : 0);

export function emqxBill(w: Workload): Bill {
  const month = (x: number) => x * MONTH_SECONDS;
  const sessionMinutes = (w.clients * MONTH_SECONDS) / 60;
  const q1 = w.qos1Share;
  const pub = (qos: number) => publishBytes(w.topicBytes, w.payloadBytes, qos, w.version);
  const pubIn = q1 * frameBytes(pub(1), true) + (1 - q1) * frameBytes(pub(0), true);
  const pubOut = q1 * frameBytes(pub(1), false) + (1 - q1) * frameBytes(pub(0), false);
  const ack = (from: boolean) => frameBytes(4, from);
  const deliveries = w.messagesPerSecond * w.fanOut;
  const sentPerClient = (w.messagesPerSecond + deliveries * q1) / w.clients;
  const pings = w.clients * Math.max(0, 1 / w.keepAliveSeconds - sentPerClient);
  const connects = (w.clients * w.reconnectsPerMonth) / MONTH_SECONDS;
  // CONNECT (a 23-byte client id), CONNACK, SUBSCRIBE (one filter), SUBACK.
  const connectBytes =
    frameBytes(37, true) + frameBytes(4, false) + frameBytes(7 + w.topicBytes, true) + frameBytes(5, false);
  const bytesPerSecond =
    w.messagesPerSecond * (pubIn + q1 * ack(false)) +
    deliveries * (pubOut + q1 * ack(true)) +
    pings * (frameBytes(2, true) + frameBytes(2, false)) +
    connects * connectBytes;
  const gb = month(bytesPerSecond) / 2 ** 30;
  const actions = month(w.messagesPerSecond * w.rulesShare);
  const notes = ["traffic: MQTT bytes in WebSocket frames, TLS and TCP/IP overhead not counted"];
  if (w.messagesPerSecond > EMQX_SERVERLESS.maxMessagesPerSecond) {
    notes.push(
      `${w.messagesPerSecond.toLocaleString("en-US")} msg/s is past a Serverless deployment's quota of ${EMQX_SERVERLESS.maxMessagesPerSecond.toLocaleString("en-US")}: this needs EMQX Dedicated (priced per hour by tier, not modelled)`,
    );
  }
  if (w.messagesPerSecond / w.clients > EMQX_SERVERLESS.maxPublishesPerClientPerSecond) {
    notes.push(
      `a client publishing more than ${EMQX_SERVERLESS.maxPublishesPerClientPerSecond} a second is past the Serverless quota`,
    );
  }
  return finish(
    [
      line("session-minutes", sessionMinutes, EMQX_SERVERLESS.sessionMinute),
      line("traffic, GB in and out", gb, EMQX_SERVERLESS.trafficGb),
      line("rule actions", actions, EMQX_SERVERLESS.ruleAction),
    ],
    month(deliveries),
    notes,
  );
}

/**
 * After a deploy every client reconnects at once: the time until all are back and
 * subscribed, with every object at half its limit of events a second (gateways:
 * the upgrade, CONNECT and SUBSCRIBE frames and the calls a connect brings them;
 * registries: each client's claim; shards: its subscribe).
 */
export function deployRecovery(
  w: Workload,
  u: UnitCosts,
  layout: Layout,
): { seconds: number; boundBy: string } {
  const frames = u.frames[w.version];
  const c = (k: keyof OpUnits) => blend(w, (s) => u.connect[s].connect[k]);
  const perGateway =
    (w.clients / layout.gateways) * (c("gatewayEvents") - c("wsIn") + frames.connect + frames.subscribe);
  const perRegistry = (w.clients * c("registryCalls")) / REGISTRY_BUCKETS;
  const perShard = (w.clients * c("shardCallsIn")) / layout.shards;
  const bounds: Array<[string, number]> = [
    ["gateways", perGateway / HALF.events],
    [`registries (${REGISTRY_BUCKETS})`, perRegistry / HALF.events],
    ["shards", perShard / HALF.events],
  ];
  const [boundBy, seconds] = bounds.reduce((a, b) => (b[1] > a[1] ? b : a));
  return { seconds, boundBy };
}
