/**
 * `npm run bench`: the same load scenarios against Nimbus (one shard and gateway,
 * and several of each) under `wrangler dev`, Mosquitto and Aedes, all on loopback.
 * Prints one markdown table and writes it, with the machine and versions, to
 * bench/results.md. `--quick` runs small sizes (CI's smoke run); `--only <words>` runs the
 * scenarios whose name contains them and only prints the table.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { type Cost, costOf } from "./load/cost.ts";
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
import { aedes, mosquitto, nimbus, storage, type Target } from "./load/targets.ts";

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt > 0 ? process.argv[onlyAt + 1] : undefined;
const sizes: Sizes = quick ? QUICK : FULL;

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

const version = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).split("\n")[0]?.trim() ?? "?";
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? "?").split("\n")[0] ?? "?";
  }
};
const pkg = (name: string) =>
  (
    JSON.parse(readFileSync(join(import.meta.dirname, "../node_modules", name, "package.json"), "utf8")) as {
      version: string;
    }
  ).version;
const machine = [
  `- date: ${new Date().toISOString()}${quick ? " (quick run: small sizes)" : ""}`,
  `- machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
  `- node ${process.version}; wrangler ${pkg("wrangler")} (workerd ${pkg("workerd")}); ${version("mosquitto", ["-h"])}; aedes ${pkg("aedes")}`,
  "- all on loopback; the load generator is one Node process (raw `ws` + the Nimbus codec)",
  storage === "tmpfs"
    ? "- Nimbus's local SQLite files on tmpfs, as Mosquitto and Aedes keep their state in memory (`-- --disk`: on disk)"
    : "- Nimbus's local SQLite files on disk: every commit waits for an fsync",
  "- rates: higher is better; times and memory: lower is better; ratios are Nimbus 1×1 over the other broker",
].join("\n");
// A run of some scenarios (--only) is printed, not recorded: results.md is the whole run.
if (only === undefined) {
  writeFileSync(
    join(import.meta.dirname, quick ? "results-quick.md" : "results.md"),
    `# Load benchmark\n\n\`npm run bench${quick ? " -- --quick" : ""}\`\n\n${machine}\n\n${table}\n`,
  );
}
