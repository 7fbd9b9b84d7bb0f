/**
 * `npm run bench`: the same load scenarios against Nimbus (one shard and gateway,
 * and several of each) under `wrangler dev`, Mosquitto and Aedes, all on loopback.
 * Prints one markdown table and writes it, with the machine and versions, to its
 * section of bench/results.md. `--only <words>` runs the scenarios whose name contains
 * them and only prints the table.
 *
 * The other parts, each into a section of its own: `--clients` (real client libraries,
 * spread traffic, layouts, and bench/units.json for `npm run capacity`), `--overload`
 * (floods with and without the rate cap), `--storms` (reconnect storms against Mosquitto
 * and Aedes, password logins); `--brokers` the comparison alone, `--all` every part.
 * `--quick` runs small sizes into bench/results-quick.md: every part unless some are named
 * (CI's smoke run).
 */
import { type Cost, costOf } from "./load/cost.ts";
import { machine, mosquittoVersion, pkg, QUICK_RESULTS, RESULTS, writeSection } from "./load/report.ts";
import {
  connectMany,
  FULL,
  fanIn,
  fanOut,
  latency,
  type Meter,
  offlineQueue,
  QUICK,
  type Result,
  restartStorm,
  retainedBurst,
  type Sizes,
} from "./load/scenarios.ts";
import { CLIENTS_FULL, CLIENTS_QUICK, type ClientSizes, clientsSection } from "./load/sections/clients.ts";
import { OVERLOAD_FULL, OVERLOAD_QUICK, overloadSection } from "./load/sections/overload.ts";
import { STORMS_FULL, STORMS_QUICK, stormsSection } from "./load/sections/storms.ts";
import { aedes, mosquitto, nimbus, type Target } from "./load/targets.ts";

const flag = (name: string) => process.argv.includes(`--${name}`);
const quick = flag("quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt > 0 ? process.argv[onlyAt + 1] : undefined;
const sizes: Sizes = quick ? QUICK : FULL;
const resultsFile = quick ? QUICK_RESULTS : RESULTS;
// The parts asked for; none named: the broker comparison, or with --quick (CI's smoke run) every part.
const named = ["brokers", "clients", "overload", "storms"].filter(flag);
const parts =
  named.length > 0 && !flag("all")
    ? named
    : flag("all") || quick
      ? ["brokers", "clients", "overload", "storms"]
      : ["brokers"];

type Row = Record<string, Result>;
const costs: Array<{ target: string; scenario: string; cost: Cost; whole: Cost }> = [];

/**
 * Runs a scenario; for Nimbus, also what it would cost on Cloudflare: for the
 * message phase alone (what each further message costs) and for the whole run
 * with its connects and subscribes.
 */
async function scenario<T>(t: Target, name: string, run: (meter: Meter) => Promise<T>): Promise<T> {
  const stats = t.stats;
  if (stats === undefined) return run({ start: async () => {}, stop: async () => {} });
  const objects = t.objects ?? 1;
  const whole = { before: await stats(), start: performance.now() };
  let phase: Cost | undefined;
  let phaseStart = { before: whole.before, at: 0 };
  const result = await run({
    start: async () => {
      phaseStart = { before: await stats(), at: performance.now() };
    },
    stop: async () => {
      phase = costOf(phaseStart.before, await stats(), (performance.now() - phaseStart.at) / 1000, objects);
    },
  });
  const all = costOf(whole.before, await stats(), (performance.now() - whole.start) / 1000, objects);
  costs.push({ target: t.name, scenario: name, cost: phase ?? all, whole: all });
  return result;
}
const rows = new Map<string, Row>();
const put = (scenario: string, target: string, r: Result) => {
  const row = rows.get(scenario) ?? {};
  row[target] = r;
  rows.set(scenario, row);
};

async function measure(start: () => Promise<Target>): Promise<string> {
  const t = await start();
  try {
    console.error(`— ${t.name}`);
    const fanIn0 = `fan-in QoS 0 (50 → 1), ${sizes.fanInMessages} msgs`;
    const fanIn1 = `fan-in QoS 1 (50 → 1), ${sizes.fanInMessages} msgs`;
    const fanOut0 = `fan-out QoS 0 (1 → ${sizes.fanOutSubscribers}), deliveries`;
    const fanOut1 = `fan-out QoS 1 (1 → ${sizes.fanOutSubscribers}), deliveries`;
    // `--only <words>`: the scenarios whose name contains them (to measure one change quickly).
    const wanted = (name: string) => only === undefined || name.includes(only);
    const run = async (name: string, result: () => Promise<Result>) => {
      if (wanted(name)) put(name, t.name, await result());
    };
    await run(fanIn0, () => scenario(t, fanIn0, (m) => fanIn(t, sizes, 0, m)));
    await run(fanIn1, () => scenario(t, fanIn1, (m) => fanIn(t, sizes, 1, m)));
    await run(fanOut0, () => scenario(t, fanOut0, (m) => fanOut(t, sizes, 0, m)));
    await run(fanOut1, () => scenario(t, fanOut1, (m) => fanOut(t, sizes, 1, m)));
    if (wanted("QoS 1 latency")) {
      const lat = await latency(t, sizes);
      put("QoS 1 latency p50 at 200 msg/s", t.name, lat.p50);
      put("QoS 1 latency p99 at 200 msg/s", t.name, lat.p99);
    }
    const connects = `${sizes.connections} clients connect and subscribe`;
    if (wanted(connects)) {
      const many = await connectMany(t, sizes);
      put(connects, t.name, many.time);
      put("memory per idle connection", t.name, many.memory);
    }
    await run(`${sizes.retained} retained topics to a new # subscriber`, () => retainedBurst(t, sizes));
    await run(`${sizes.queued} QoS 1 queued offline, delivered on reconnect`, () => offlineQueue(t, sizes));
    await run(`restart with ${sizes.restartClients} clients connected: all back and subscribed`, () =>
      restartStorm(t, sizes),
    );
    return t.name;
  } finally {
    await t.stop();
  }
}

async function compareBrokers(): Promise<void> {
  const names: string[] = [];
  names.push(await measure(() => nimbus(1, 1)));
  names.push(await measure(() => nimbus(4, 3)));
  names.push(await measure(mosquitto));
  names.push(await measure(aedes));

  const [n1, , mq, ae] = names as [string, string, string, string];
  const ratio = (row: Row, other: string) => {
    const a = row[n1];
    const b = row[other];
    if (!a || !b || !Number.isFinite(a.value) || !Number.isFinite(b.value) || b.value === 0) return "–";
    return `${(a.value / b.value).toFixed(2)}×`;
  };
  const header = ["scenario", ...names, `${n1} / Mosquitto`, `${n1} / Aedes`];
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const [scenario, row] of rows) {
    lines.push(
      `| ${[scenario, ...names.map((n) => row[n]?.text ?? "–"), ratio(row, mq), ratio(row, ae)].join(" | ")} |`,
    );
  }
  const money = (x: number) => (Number.isFinite(x) ? `$${x.toFixed(4)}` : "–");
  const costLines = [
    "Message phase (every client connected and subscribed); the last but one column prices the whole run, connects and subscribes included.",
    "",
    "| target | scenario | delivered | DO requests | WS messages in | rows written | log lines | object-seconds | Nimbus per million delivered | whole run per million delivered | AWS IoT Core per million delivered |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...costs.map(
      ({ target, scenario: s, cost: c, whole }) =>
        `| ${target} | ${s} | ${c.delivered} | ${c.requests} | ${c.wsIn} | ${c.rowsWritten} | ${c.logLines} | ${c.objectSeconds.toFixed(1)} | ${money(c.perMillion)} | ${money(whole.perMillion)} | ${money(c.awsPerMillion)} |`,
    ),
  ];
  const table = `${lines.join("\n")}\n\n### Cost on Cloudflare\n\n${costLines.join("\n")}`;
  console.log(table);

  const about = machine(
    [
      `- ${mosquittoVersion()}; aedes ${pkg("aedes")}`,
      "- all on loopback; the load generator is one Node process (raw `ws` + the Nimbus codec)",
      "- rates: higher is better; times and memory: lower is better; ratios are Nimbus 1×1 over the other broker",
    ],
    quick,
  );
  // A run of some scenarios (--only) is printed, not recorded: the section is the whole run.
  if (only === undefined) {
    writeSection(
      resultsFile,
      "brokers",
      `## Nimbus, Mosquitto and Aedes\n\n\`npm run bench${quick ? " -- --quick" : ""}\`\n\n${about}\n\n${table}`,
    );
  }
}

if (parts.includes("brokers")) await compareBrokers();
if (parts.includes("clients")) {
  // `--slots N`, `--seconds S`: other fleet sizes (publishers, seconds of spread traffic).
  const value = (name: string) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? Number(process.argv[at + 1]) : undefined;
  };
  // A part of the section, printed and not recorded: `--layouts 1x1,16x16`, `--libraries raw,MQTT.js`
  // (names containing a word), `--sessions clean`, `--traffic spread`, `--messages-only` (no frame
  // probes, connects or pings).
  const list = (name: string) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? (process.argv[at + 1] ?? "").split(",") : undefined;
  };
  const base = quick ? CLIENTS_QUICK : CLIENTS_FULL;
  const layouts = list("layouts")?.map((l) => {
    const [shards, gateways] = l.split("x").map(Number);
    return { shards: shards as number, gateways: gateways as number };
  });
  const libraries = list("libraries");
  const sizes: ClientSizes = {
    ...base,
    slots: value("slots") ?? base.slots,
    spreadSeconds: value("seconds") ?? base.spreadSeconds,
    layouts: layouts ?? base.layouts,
    sessions: (list("sessions") as typeof base.sessions | undefined) ?? base.sessions,
    traffic: (list("traffic") as typeof base.traffic | undefined) ?? base.traffic,
    libraries,
    messagesOnly: flag("messages-only"),
    partial:
      flag("messages-only") ||
      [layouts, list("sessions"), list("traffic"), libraries].some((l) => l !== undefined),
  };
  const section = await clientsSection(sizes, quick);
  console.log(section);
  if (!sizes.partial) writeSection(resultsFile, "clients", section);
}
if (parts.includes("overload")) {
  // Some rows only, printed and not recorded: `--caps default,lifted`, `--qos 0,1`, `--paths proxy,direct`.
  const list = (name: string) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? (process.argv[at + 1] ?? "").split(",") : undefined;
  };
  const base = quick ? OVERLOAD_QUICK : OVERLOAD_FULL;
  const caps = list("caps") as typeof base.caps | undefined;
  const qos = list("qos")?.map(Number) as typeof base.qos | undefined;
  const paths = list("paths") as typeof base.paths | undefined;
  const section = await overloadSection(
    { ...base, caps: caps ?? base.caps, qos: qos ?? base.qos, paths: paths ?? base.paths },
    quick,
  );
  console.log(section);
  if (caps === undefined && qos === undefined && paths === undefined)
    writeSection(resultsFile, "overload", section);
}
if (parts.includes("storms")) {
  const section = await stormsSection(quick ? STORMS_QUICK : STORMS_FULL, quick);
  console.log(section);
  writeSection(resultsFile, "storms", section);
}
