/**
 * `npm run bench -- --clients`: what users run, measured. Frames per packet of each
 * client library (a loopback broker counts them); then, against Nimbus 1×1 and 16×16,
 * fleets of each library with clean and persistent sessions, traffic spread in time
 * (each publisher QoS 1 once a second at a random phase) and in bursts, fan-out 2:
 * billed units per delivered message, $ per million and QoS 1 latency; and a raw
 * client's connect, subscribe, disconnect and ping, per operation. The counts go to
 * bench/units.json for `npm run capacity`.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type {
  ConnectRow,
  Layout,
  MeasuredUnits,
  MessageRow,
  OpUnits,
  PacketFrames,
  PingRow,
  Sessions,
} from "../../capacity/units.ts";
import { LoadClient } from "../client.ts";
import { type FleetPlan, quantile, type Traffic } from "../clients/core.ts";
import { FrameCounter, type FrameCounts } from "../clients/frames.ts";
import { allLibraries, type ClientLibrary } from "../clients/libraries.ts";
import { runFleet } from "../clients/run.ts";
import { isolateHeap } from "../inspector.ts";
import { dollarsPerMillion, Meter, type Units } from "../meter.ts";
import { chromiumVersion, fixed, int, machine, money, pahoVersion, pkg, table } from "../report.ts";
import { nimbus, type Target } from "../targets.ts";

export interface ClientSizes {
  /** Publishers in a fleet (and as many subscribers). */
  slots: number;
  spreadSeconds: number;
  /** Messages each publisher sends at once in a burst. */
  burstEach: number;
  layouts: Layout[];
  sessions: Sessions[];
  traffic: Array<Traffic["kind"]>;
  /** Raw clients connecting (and pinging) to measure a connect and a ping. */
  connectClients: number;
  pingsEach: number;
  /** Libraries whose name contains one of these (all when absent). */
  libraries?: string[];
  /** Only the message rows: no frame probes, connects or pings. */
  messagesOnly?: boolean;
  /** A part of the section (some libraries, layouts, sessions, traffic): units.json is left as it is. */
  partial?: boolean;
}

export const CLIENTS_FULL: ClientSizes = {
  // 200 publishers once a second: 200 msg/s, the rate of the latency target.
  slots: 200,
  spreadSeconds: 10,
  burstEach: 10,
  layouts: [
    { shards: 1, gateways: 1 },
    { shards: 16, gateways: 16 },
  ],
  sessions: ["clean", "persistent"],
  traffic: ["spread", "burst"],
  // Enough that the isolate heap they hold stands out of its ups and downs.
  connectClients: 1_000,
  pingsEach: 5,
};

export const CLIENTS_QUICK: ClientSizes = {
  slots: 10,
  spreadSeconds: 3,
  burstEach: 5,
  layouts: [{ shards: 1, gateways: 1 }],
  sessions: ["clean"],
  traffic: ["spread"],
  connectClients: 20,
  pingsEach: 2,
};

const FAN_OUT = 2;
let runs = 0;
const prefix = (what: string) => `bench/${what}-${process.pid}-${++runs}`;
const versionName = (v: 4 | 5) => (v === 4 ? "3.1.1" : "5.0");

/** Frames per packet of one library at one protocol level: two publishers, two subscribers, one message each. */
async function probeFrames(counter: FrameCounter, lib: ClientLibrary, version: 4 | 5): Promise<FrameCounts> {
  const plan: FleetPlan = {
    url: counter.url,
    prefix: prefix("frames"),
    slots: 2,
    fanOut: 2,
    clean: true,
    version,
  };
  counter.take();
  const fleet = await lib.open(plan);
  await runFleet(fleet, plan, { kind: "burst", each: 1 });
  await fleet.close();
  // Every client's DISCONNECT has arrived (or the library closed without one) within a second.
  const deadline = Date.now() + 1_000;
  while (Date.now() < deadline && counter.peek().byType.disconnect.packets < 4) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return counter.take();
}

function packetFrames(c: FrameCounts): PacketFrames {
  const per = (t: keyof FrameCounts["byType"]) =>
    c.byType[t].packets > 0 ? c.byType[t].frames / c.byType[t].packets : Number.NaN;
  return {
    connect: per("connect"),
    subscribe: per("subscribe"),
    publish: per("publish"),
    puback: per("puback"),
    overall: c.packets > 0 ? c.frames / c.packets : Number.NaN,
  };
}

async function connectAll(t: Target, ids: string[], clean: boolean): Promise<LoadClient[]> {
  const out: LoadClient[] = [];
  for (let i = 0; i < ids.length; i += 50) {
    const batch = await Promise.all(
      ids.slice(i, i + 50).map((id) => LoadClient.connect(t.url, id, { clean })),
    );
    await Promise.all(batch.map((c, j) => c.subscribe(`${ids[i + j]}/in`, 1)));
    out.push(...batch);
  }
  return out;
}

/** n raw clients connect and subscribe one filter, stay idle, then disconnect: units per client. */
async function measureConnects(
  t: Target,
  meter: Meter,
  layout: Layout,
  sessions: Sessions,
  n: number,
): Promise<ConnectRow> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix("connect")}-${i}`);
  const port = t.inspectorPort?.() ?? 0;
  const heapBefore = await isolateHeap(port, { collect: true });
  const s0 = await meter.snapshot();
  const clients = await connectAll(t, ids, sessions === "clean");
  const s1 = await meter.settled();
  const heapAfter = await isolateHeap(port, { collect: true });
  for (const c of clients) c.close();
  await Promise.all(clients.map((c) => c.closed));
  // The broker has ended every connection: its count is back where it was.
  let s2 = await meter.settled();
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && s2.stats.connections > s0.stats.connections) s2 = await meter.settled();
  const each = (u: Units): OpUnits => ({
    requests: u.requests / n,
    wsIn: u.wsIn / n,
    rowsWritten: u.rowsWritten / n,
    logLines: u.logLines / n,
    gatewayEvents: u.gatewayEvents / n,
    shardCallsIn: u.shardCallsIn / n,
    registryCalls: u.registryCalls / n,
    sessionCalls: u.sessionCalls / n,
  });
  return {
    layout,
    sessions,
    clients: n,
    connect: each(meter.units(s0, s1)),
    disconnect: each(meter.units(s1, s2)),
    heapBytes: (heapAfter - heapBefore) / n,
  };
}

async function measurePings(
  t: Target,
  meter: Meter,
  layout: Layout,
  n: number,
  each: number,
): Promise<PingRow> {
  const clients = await connectAll(
    t,
    Array.from({ length: n }, (_, i) => `${prefix("ping")}-${i}`),
    true,
  );
  const s0 = await meter.settled();
  await Promise.all(
    clients.map(async (c) => {
      for (let k = 0; k < each; k++) await c.ping();
    }),
  );
  const s1 = await meter.settled();
  for (const c of clients) c.close();
  await Promise.all(clients.map((c) => c.closed));
  const u = meter.units(s0, s1);
  return { layout, pings: n * each, requests: u.requests / (n * each), wsIn: u.wsIn / (n * each) };
}

export async function measureMessages(
  t: Target,
  meter: Meter,
  lib: ClientLibrary,
  layout: Layout,
  sessions: Sessions,
  traffic: Traffic,
  slots: number,
): Promise<MessageRow> {
  const plan: FleetPlan = {
    url: t.url,
    prefix: prefix("fleet"),
    slots,
    fanOut: FAN_OUT,
    clean: sessions === "clean",
    version: 4,
  };
  const fleet = await lib.open(plan);
  try {
    const before = await meter.settled();
    const cpuBefore = t.workerdCpu?.() ?? new Map<number, number>();
    const run = await runFleet(fleet, plan, traffic);
    const after = await meter.settled();
    const cpuAfter = t.workerdCpu?.() ?? new Map<number, number>();
    const workerdCpuMs = Math.max(0, ...[...cpuAfter].map(([pid, ms]) => ms - (cpuBefore.get(pid) ?? ms)));
    const u = { ...meter.units(before, after), seconds: run.seconds };
    const sorted = run.latencies.sort((a, b) => a - b);
    return {
      client: lib.name,
      layout,
      sessions,
      traffic: traffic.kind,
      slots,
      fanOut: FAN_OUT,
      seconds: run.seconds,
      published: u.published,
      delivered: u.delivered,
      complete: run.complete,
      requests: u.requests,
      wsIn: u.wsIn,
      rowsWritten: u.rowsWritten,
      logLines: u.logLines,
      gatewayCallsIn: u.gatewayCallsIn,
      shardCallsIn: u.shardCallsIn,
      registryCalls: u.registryCalls,
      sessionCalls: u.sessionCalls,
      gatewayEvents: u.gatewayEvents,
      busiestGatewayEvents: u.busiestGatewayEvents,
      busiestShardCalls: u.busiestShardCalls,
      latencyP50: quantile(sorted, 0.5),
      latencyP99: quantile(sorted, 0.99),
      dollarsPerMillion: dollarsPerMillion(u).total,
      workerdCpuMs,
    };
  } finally {
    await fleet.close();
  }
}

export async function clientsSection(sizes: ClientSizes, quick: boolean): Promise<string> {
  const libraries = allLibraries().filter(
    (lib) => sizes.libraries === undefined || sizes.libraries.some((w) => lib.name.includes(w)),
  );
  const units: MeasuredUnits = {
    measuredAt: new Date().toISOString(),
    machine: machine([], quick),
    quick,
    frames: {},
    messages: [],
    connects: [],
    pings: [],
  };
  try {
    const counter = sizes.messagesOnly ? undefined : await FrameCounter.start();
    try {
      for (const lib of counter === undefined ? [] : libraries) {
        for (const version of [4, 5] as const) {
          console.error(`— frames: ${lib.name}, MQTT ${versionName(version)}`);
          const frames = units.frames[lib.name] ?? {};
          frames[versionName(version)] = packetFrames(
            await probeFrames(counter as FrameCounter, lib, version),
          );
          units.frames[lib.name] = frames;
        }
      }
    } finally {
      await counter?.close();
    }
    for (const layout of sizes.layouts) {
      const t = await nimbus(layout.shards, layout.gateways);
      try {
        const stats = t.stats;
        if (stats === undefined) throw new Error("Nimbus target without stats");
        const meter = await Meter.calibrate(stats);
        if (!sizes.messagesOnly) {
          console.error(`— ${t.name}: connects and pings`);
          for (const sessions of sizes.sessions) {
            units.connects.push(await measureConnects(t, meter, layout, sessions, sizes.connectClients));
          }
          units.pings.push(await measurePings(t, meter, layout, sizes.connectClients, sizes.pingsEach));
        }
        for (const lib of libraries) {
          for (const sessions of sizes.sessions) {
            for (const kind of sizes.traffic) {
              const traffic: Traffic =
                kind === "spread" ? { kind, seconds: sizes.spreadSeconds } : { kind, each: sizes.burstEach };
              console.error(`— ${t.name}: ${lib.name}, ${sessions}, ${kind}`);
              units.messages.push(
                await measureMessages(t, meter, lib, layout, sessions, traffic, sizes.slots),
              );
            }
          }
        }
      } finally {
        await t.stop();
      }
    }
  } finally {
    for (const lib of libraries) await lib.stop();
  }
  // A part of the section (some libraries, layouts, only the messages) is printed, not recorded.
  if (!sizes.partial)
    writeFileSync(
      join(import.meta.dirname, quick ? "../../units-quick.json" : "../../units.json"),
      `${JSON.stringify(units, null, 2)}\n`,
    );
  return render(units, sizes);
}

const layoutName = (l: Layout) => `${l.shards}×${l.gateways}`;

function render(u: MeasuredUnits, sizes: ClientSizes): string {
  const frames = table(
    ["client library", "MQTT", "CONNECT", "SUBSCRIBE", "QoS 1 PUBLISH", "PUBACK", "frames / packets, all"],
    Object.entries(u.frames).flatMap(([lib, byVersion]) =>
      Object.entries(byVersion).map(([v, f]) => [
        lib,
        v,
        fixed(f.connect, 1),
        fixed(f.subscribe, 1),
        fixed(f.publish, 1),
        fixed(f.puback, 1),
        fixed(f.overall, 2),
      ]),
    ),
  );
  const per = (x: number, r: MessageRow) => (r.delivered > 0 ? x / r.delivered : Number.NaN);
  const messages = table(
    [
      "client",
      "layout",
      "sessions",
      "traffic",
      "delivered",
      "published / s",
      "billed requests / delivered",
      "WS messages in / delivered",
      "rows written / delivered",
      "$ / million delivered",
      "QoS 1 latency p50 / p99",
      "busiest gateway, events / s",
      "busiest shard, calls / s",
    ],
    u.messages.map((r) => [
      r.client,
      layoutName(r.layout),
      r.sessions,
      r.traffic,
      `${int(r.delivered)}${r.complete ? "" : ` of ${int(r.published * r.fanOut)} (incomplete)`}`,
      int(r.published / r.seconds),
      fixed(per(r.requests, r), 3),
      fixed(per(r.wsIn, r), 2),
      fixed(per(r.rowsWritten, r), 2),
      money(r.dollarsPerMillion),
      `${fixed(r.latencyP50, 1)} / ${fixed(r.latencyP99, 1)} ms`,
      int(r.busiestGatewayEvents),
      int(r.busiestShardCalls),
    ]),
  );
  const connects = table(
    [
      "layout",
      "sessions",
      "operation",
      "billed requests",
      "of which registry calls",
      "shard calls",
      "session calls",
      "gateway events",
      "WS messages in",
      "rows written",
      "log lines",
    ],
    u.connects.flatMap((c) =>
      (["connect", "disconnect"] as const).map((op) => [
        layoutName(c.layout),
        c.sessions,
        op === "connect" ? "connect + subscribe" : "disconnect",
        fixed(c[op].requests, 2),
        fixed(c[op].registryCalls, 2),
        fixed(c[op].shardCallsIn, 2),
        fixed(c[op].sessionCalls, 2),
        fixed(c[op].gatewayEvents, 2),
        fixed(c[op].wsIn, 2),
        fixed(c[op].rowsWritten, 2),
        fixed(c[op].logLines, 2),
      ]),
    ),
  );
  const heap = u.connects
    .map(
      (c) =>
        `${layoutName(c.layout)} ${c.sessions}: ${Number.isFinite(c.heapBytes) ? `${(c.heapBytes / 1024).toFixed(1)} KiB` : "–"}`,
    )
    .join("; ");
  const pings = table(
    ["layout", "pings", "requests / ping", "WS messages in / ping"],
    u.pings.map((p) => [layoutName(p.layout), int(p.pings), fixed(p.requests, 3), fixed(p.wsIn, 2)]),
  );
  return [
    "## What users run: client libraries, spread traffic, layouts",
    "",
    "`npm run bench -- --clients`",
    "",
    machine(
      [
        `- MQTT.js ${pkg("mqtt")} (Node, and its browser build in ${chromiumVersion()} through playwright-core ${pkg("playwright-core")}); Paho ${pahoVersion()} (Debian's python3-paho-mqtt, websockets transport); the raw client is the benchmark's own (our codec, one frame a packet)`,
        `- fleets of ${sizes.slots} publishers and ${sizes.slots} subscribers, fan-out ${FAN_OUT}, QoS 1, MQTT 3.1.1; spread: each publisher once a second at a random phase for ${sizes.spreadSeconds} s; burst: ${sizes.burstEach} messages from each publisher at once`,
        "- billed units from /api/stats around the message phase (the stats reads' own calls taken out); $ at Cloudflare's unit prices without the monthly allowances, every gateway and shard counted awake for the whole phase (an upper bound); `npm run capacity` adds allowances and the monthly minimum",
      ],
      u.quick,
    ),
    "",
    "### WebSocket frames per MQTT packet",
    "",
    "Frames that carried a part of each packet a client sent, counted by a loopback broker (`bench/load/clients/frames.ts`); on Cloudflare each frame is an incoming WebSocket message.",
    "",
    frames,
    "",
    "### Billed units per delivered message",
    "",
    messages,
    "",
    "### A connect, a disconnect, a ping (raw client), per client",
    "",
    connects,
    "",
    `Isolate heap per idle connection (after a garbage collection, the Worker and every object together): ${heap}.`,
    "",
    pings,
  ].join("\n");
}
