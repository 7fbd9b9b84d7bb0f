/**
 * `npm run capacity -- [flags]`: for a workload, the layout to choose (gateways and
 * shards), each object's load against half of Cloudflare's limits, and the monthly
 * bill by component with the Workers Paid allowances and minimum, from the unit counts
 * `npm run bench -- --clients` measured (bench/units.json); beside it AWS IoT Core and
 * EMQX Serverless. `--table` prints one line each for 10,000, 100,000 and 1,000,000
 * clients (the README's cost and scale sections show it).
 *
 * Flags (defaults in brackets): --clients [100000], --rate msg/s published [clients ×
 * 0.1], --fan-out [2], --qos1 share of QoS 1 [1], --persistent share [0], --keep-alive s
 * [60], --payload bytes [64], --topic bytes [32], --reconnects per client a month [30],
 * --rules share of messages a rule forwards [0], --mqtt 3.1.1|5.0 [3.1.1], --client
 * library as measured ["MQTT.js (Node)"], --broker the client whose runs give the broker's
 * calls and rows ["raw (one frame a packet)"], --units file [bench/units.json],
 * --heap-per-connection bytes [measured], --recovery s: also enough gateways and shards that
 * every client is back within that time after a deploy [no bound].
 */
import { relative } from "node:path";
import { parseArgs } from "node:util";
import {
  againstHalf,
  awsBill,
  type Bill,
  cloudflareBill,
  deployRecovery,
  emqxBill,
  HALF,
  loadAt,
  recommend,
  type UnitCosts,
  unitCosts,
  type Workload,
} from "./capacity/model.ts";
import { READ_ON } from "./capacity/prices.ts";
import { readUnits, UNITS_FILE } from "./capacity/units.ts";
import { fixed, int, money, table } from "./load/report.ts";

const { values: flags } = parseArgs({
  options: {
    clients: { type: "string", default: "100000" },
    rate: { type: "string" },
    "fan-out": { type: "string", default: "2" },
    qos1: { type: "string", default: "1" },
    persistent: { type: "string", default: "0" },
    "keep-alive": { type: "string", default: "60" },
    payload: { type: "string", default: "64" },
    topic: { type: "string", default: "32" },
    reconnects: { type: "string", default: "30" },
    rules: { type: "string", default: "0" },
    mqtt: { type: "string", default: "3.1.1" },
    client: { type: "string", default: "MQTT.js (Node)" },
    broker: { type: "string" },
    units: { type: "string", default: UNITS_FILE },
    "heap-per-connection": { type: "string" },
    recovery: { type: "string" },
    table: { type: "boolean", default: false },
  },
});

const num = (name: keyof typeof flags, fallback?: number): number => {
  const raw = flags[name];
  const v = raw === undefined || typeof raw === "boolean" ? fallback : Number(raw);
  if (v === undefined || !Number.isFinite(v) || v < 0)
    throw new Error(`--${name}: a number ≥ 0, not ${String(raw)}`);
  return v;
};

const measured = readUnits(flags.units);
const base = unitCosts(measured, flags.client, flags.broker);
const units: UnitCosts =
  flags["heap-per-connection"] === undefined
    ? base
    : { ...base, heapPerConnection: num("heap-per-connection") };

function workload(clients: number, rate?: number): Workload {
  return {
    clients,
    messagesPerSecond: rate ?? clients * 0.1,
    fanOut: num("fan-out"),
    qos1Share: Math.min(1, num("qos1")),
    persistentShare: Math.min(1, num("persistent")),
    keepAliveSeconds: Math.max(1, num("keep-alive")),
    payloadBytes: num("payload"),
    topicBytes: num("topic"),
    reconnectsPerMonth: num("reconnects"),
    rulesShare: Math.min(1, num("rules")),
    version: flags.mqtt === "5.0" || flags.mqtt === "5" ? 5 : 4,
  };
}

const recoveryBound = flags.recovery === undefined ? Number.POSITIVE_INFINITY : num("recovery");

const pct = (x: number) => `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
const layoutText = (g: number, s: number) => `GATEWAYS=${int(g)}, TOPIC_SHARDS=${int(s)}`;

function bill(name: string, b: Bill): string {
  return [
    `**${name}**: ${money(b.total)} a month, ${money(b.perMillion)} per million delivered`,
    "",
    table(
      ["component", "used in the month", "included", "$"],
      b.lines.map((l) => [
        l.component,
        int(l.units),
        l.included > 0 ? int(l.included) : "–",
        money(l.dollars),
      ]),
    ),
    ...b.notes.map((n) => `- ${n}`),
  ].join("\n");
}

function mostLoaded(share: Record<string, number>): string {
  const [what, x] = Object.entries(share).reduce((a, b) => (b[1] > a[1] ? b : a));
  return `${what}, at ${pct(x)} of half the limit`;
}

function report(w: Workload): string {
  const layout = recommend(w, units, recoveryBound);
  const header = [
    `# ${int(w.clients)} clients, ${int(w.messagesPerSecond)} messages a second`,
    "",
    `Fan-out ${w.fanOut}, QoS 1 share ${w.qos1Share}, persistent sessions ${w.persistentShare}, keep-alive ${w.keepAliveSeconds} s, payload ${w.payloadBytes} B on a ${w.topicBytes}-byte topic, ${w.reconnectsPerMonth} reconnects a client a month, MQTT ${w.version === 4 ? "3.1.1" : "5.0"}.`,
    `Unit counts: ${relative(process.cwd(), flags.units)}, measured ${measured.measuredAt} (${units.basis}). Prices read ${READ_ON} (bench/capacity/prices.ts).`,
    "",
  ];
  if (layout === undefined) {
    return [
      ...header,
      "No layout within the settings' bounds keeps every object under half of each limit.",
    ].join("\n");
  }
  const l = loadAt(w, units, layout);
  const share = againstHalf(l);
  const rows: Array<[string, string, number, number]> = [
    ["gateway", "events / s (WebSocket messages, calls, upgrades)", l.perGateway.events, HALF.events],
    ["gateway", "WebSockets", l.perGateway.sockets, HALF.sockets],
    [
      "gateway",
      "heap, MiB (connections and 16 MiB of held messages)",
      l.perGateway.heapBytes / 2 ** 20,
      HALF.heapBytes / 2 ** 20,
    ],
    ["shard", "calls / s", l.perShard.calls, HALF.events],
    ["registry", "calls / s (connects)", l.perRegistry.calls, HALF.events],
    [
      "shard, one delivery batch",
      "subrequests (a call to every gateway, at most)",
      l.subrequests.delivery,
      HALF.subrequests,
    ],
    [
      "stats read ($SYS, /api/stats)",
      "subrequests (every gateway and shard)",
      l.subrequests.stats,
      HALF.subrequests,
    ],
  ];
  const recovery = deployRecovery(w, units, layout);
  return [
    ...header,
    `## Layout: ${layoutText(layout.gateways, layout.shards)}`,
    "",
    "Each object's load against half of the platform's limit (the model's ceiling):",
    "",
    table(
      ["object", "what", "load", "half of the limit", "share of the half"],
      rows.map(([o, what, v, half]) => [o, what, v < 10 ? fixed(v, 2) : int(v), int(half), pct(v / half)]),
    ),
    "",
    `Calls per message at this layout: gateway → shard ${fixed(l.gatewayToShardCalls / w.messagesPerSecond, 3)} a publish, shard → gateway ${fixed(l.shardToGatewayCalls / Math.max(1, l.deliveries), 3)} a delivery; ${int(l.wsIn)} incoming WebSocket messages a second in all.`,
    `Deploy recovery: every client back and subscribed in about ${fixed(recovery.seconds, 1)} s with each object at half its limit (bound by the ${recovery.boundBy}).`,
    `Most loaded: ${mostLoaded(share)}.`,
    "",
    "## A month",
    "",
    bill("Nimbus on Cloudflare (Workers Paid)", cloudflareBill(w, units, layout)),
    "",
    bill("AWS IoT Core", awsBill(w)),
    "",
    bill("EMQX Serverless", emqxBill(w)),
  ].join("\n");
}

function sizes(): string {
  const rows = [10_000, 100_000, 1_000_000].map((clients) => {
    const w = workload(
      clients,
      flags.rate === undefined ? undefined : (num("rate") * clients) / num("clients"),
    );
    const layout = recommend(w, units, recoveryBound);
    if (layout === undefined)
      return [int(clients), int(w.messagesPerSecond), "none within bounds", "–", "–", "–", "–", "–", "–"];
    const l = loadAt(w, units, layout);
    const cf = cloudflareBill(w, units, layout);
    const aws = awsBill(w);
    const emqx = emqxBill(w);
    return [
      int(clients),
      int(w.messagesPerSecond),
      `${int(layout.gateways)} × ${int(layout.shards)}`,
      `${int(l.perGateway.events)} / ${int(l.perShard.calls)}`,
      money(cf.total),
      money(cf.perMillion),
      money(aws.total),
      money(emqx.total) + (emqx.notes.length > 1 ? " (past Serverless quotas)" : ""),
      `${fixed(deployRecovery(w, units, layout).seconds, 0)} s`,
    ];
  });
  const w = workload(num("clients"));
  return [
    `Fan-out ${w.fanOut}, QoS 1 share ${w.qos1Share}, persistent ${w.persistentShare}, ${flags.rate === undefined ? "0.1 messages a second a client" : `${num("rate") / num("clients")} messages a second a client`}, keep-alive ${w.keepAliveSeconds} s, ${w.payloadBytes}-byte payloads, ${w.reconnectsPerMonth} reconnects a month; units ${measured.measuredAt} (${units.basis}); prices read ${READ_ON}.`,
    "",
    table(
      [
        "clients",
        "msg/s",
        "gateways × shards",
        "busiest gateway events/s / shard calls/s (half limit 500)",
        "Nimbus on Cloudflare / month",
        "Nimbus $ per million delivered",
        "AWS IoT Core / month",
        "EMQX Serverless / month",
        "deploy recovery",
      ],
      rows,
    ),
  ].join("\n");
}

console.log(
  flags.table
    ? sizes()
    : report(workload(num("clients"), flags.rate === undefined ? undefined : num("rate"))),
);
