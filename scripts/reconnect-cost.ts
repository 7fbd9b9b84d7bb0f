/**
 * What a connect costs the broker when every client comes back at once after a
 * restart, as after a deploy: the measurements behind README "Scale" and its
 * deploy-recovery estimate.
 *
 *   npx node scripts/reconnect-cost.ts [--clients 2000] [--concurrency 500] [--kind both|clean|persistent]
 *                                      [--gateways 1] [--shards 1] [--disk] [--profile [--cpuprofile FILE]]
 *
 * For each kind of session, on a broker of its own (`wrangler dev`, storage on
 * tmpfs unless --disk): N raw clients (3.1.1, one packet a frame) connect and
 * subscribe to a topic each; the broker restarts on the same storage, every
 * socket closes, and all N come back, at most `concurrency` opening at a time:
 * CONNECT with the same client id and Clean Session, then SUBSCRIBE unless the
 * broker said its session is present. Printed for the first connects and for the
 * storm after the restart: the wall time, connects a second, each client's time
 * from opening its socket to being subscribed (median, 95th percentile), the CPU
 * of the broker's workerd per connect (wrangler's proxy apart: it passes every
 * frame on and has no counterpart on Cloudflare), and the calls and rows the
 * broker's objects counted per connect (/api/stats). With --profile, the storm
 * after the restart is profiled (object-profile.ts) and the JavaScript CPU of
 * each class of object per connect is printed too (the profiler slows it: take
 * the other figures from a run without it); `--cpuprofile FILE` writes that profile
 * to FILE as well, for Chrome DevTools.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { BrokerStats } from "../broker/stats.ts";
import { type RunningBroker, startBroker, workerdCpu } from "../test/support/broker.ts";
import { RawClient } from "../test/support/clients.ts";
import { IsolateProfiler, type Shares } from "./object-profile.ts";

const TOKEN = "reconnect-token";
/** How long one client waits for CONNACK or SUBACK in a storm before the run fails. */
const WAIT_MS = 120_000;

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "500" },
    kind: { type: "string", default: "both" },
    gateways: { type: "string", default: "1" },
    shards: { type: "string", default: "1" },
    disk: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    cpuprofile: { type: "string" },
  },
});
const clients = Number(values.clients);
const concurrency = Number(values.concurrency);
const kinds = values.kind === "both" ? ["clean", "persistent"] : [values.kind as string];

type Kind = "clean" | "persistent";

interface Storm {
  ms: number;
  /** Each client's time from opening its socket to being subscribed (or resumed). */
  each: number[];
  resumed: number;
  cpu: { runtime: number; proxy: number };
  /** Counters of gateways (g.) and shards (s.) that moved, summed. */
  counted: Record<string, number>;
  /** With --profile: JavaScript CPU ms by class of object. */
  shares?: Shares;
}

async function stats(broker: RunningBroker): Promise<BrokerStats> {
  const res = await fetch(`${broker.httpUrl}/api/stats`, {
    headers: { authorization: `Bearer ${TOKEN}` },
    signal: AbortSignal.timeout(120_000),
  });
  if (res.status !== 200) throw new Error(`/api/stats answered ${res.status}`);
  return (await res.json()) as BrokerStats;
}

function summed(s: BrokerStats): Record<string, number> {
  const sum: Record<string, number> = {};
  const add = (prefix: string, counters: Record<string, number>) => {
    for (const [k, v] of Object.entries(counters)) sum[`${prefix}${k}`] = (sum[`${prefix}${k}`] ?? 0) + v;
  };
  for (const g of s.gateways) add("g.", g.counters);
  for (const x of s.shards) add("s.", x.counters);
  return sum;
}

/** One client: open, CONNECT, and SUBSCRIBE unless its session is present; ms it took. */
async function comeBack(
  url: string,
  id: string,
  kind: Kind,
  opened: RawClient[],
): Promise<{ ms: number; resumed: boolean }> {
  const started = performance.now();
  const c = await RawClient.open(url, 4);
  opened.push(c);
  c.sendConnect(id, { cleanStart: kind === "clean" });
  const connack = await c.next("connack", WAIT_MS);
  if ((connack.reasonCode ?? 0) !== 0) throw new Error(`${id}: CONNACK ${connack.reasonCode}`);
  const resumed = connack.sessionPresent === true;
  if (!resumed) {
    const subscription = { topicFilter: `rc/${id}`, noLocal: false, retainAsPublished: false } as const;
    c.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ ...subscription, qos: 1, retainHandling: 0 }],
    });
    const suback = await c.next("suback", WAIT_MS);
    if (suback.reasonCodes[0] !== 1) throw new Error(`${id}: SUBACK ${suback.reasonCodes}`);
  }
  return { ms: performance.now() - started, resumed };
}

/** All clients, at most `concurrency` on their way at once; what it took. */
async function storm(
  broker: RunningBroker,
  ids: string[],
  kind: Kind,
  opened: RawClient[],
  profiler?: IsolateProfiler,
): Promise<Storm> {
  const before = summed(await stats(broker));
  await profiler?.start();
  const cpu = workerdCpu(broker);
  const started = performance.now();
  const each: number[] = [];
  let resumed = 0;
  let next = 0;
  const lane = async () => {
    while (next < ids.length) {
      const r = await comeBack(broker.url, ids[next++] as string, kind, opened);
      each.push(r.ms);
      if (r.resumed) resumed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, lane));
  const ms = performance.now() - started;
  const used = workerdCpu(broker);
  const shares = await profiler?.stop(values.cpuprofile);
  const after = summed(await stats(broker));
  const counted: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) counted[k] = v - (before[k] ?? 0);
  return {
    ms,
    each,
    resumed,
    cpu: { runtime: used.runtime - cpu.runtime, proxy: used.proxy - cpu.proxy },
    counted,
    ...(shares === undefined ? {} : { shares }),
  };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)] ?? 0;

function report(label: string, s: Storm, n: number): void {
  const perConnect = (x: number) => ((x * 1000) / n).toFixed(2);
  console.log(
    `  ${label}: ${(s.ms / 1000).toFixed(2)} s, ${Math.round(n / (s.ms / 1000))} connects/s; ` +
      `each ${pct(s.each, 0.5).toFixed(0)} ms median, ${pct(s.each, 0.95).toFixed(0)} ms p95; ` +
      `${s.resumed} sessions resumed; workerd CPU ${perConnect(s.cpu.runtime)} ms a connect ` +
      `(wrangler's proxy ${perConnect(s.cpu.proxy)} ms more)`,
  );
  const counted = Object.entries(s.counted)
    .filter(([k]) => !k.endsWith("log_lines"))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${(v / n).toFixed(2)}`);
  console.log(`    per connect: ${counted.join(", ")}`);
  if (s.shares !== undefined) {
    const total = Object.values(s.shares).reduce((a, b) => a + b, 0);
    const byClass = Object.entries(s.shares)
      .sort(([, a], [, b]) => b - a)
      .map(([k, v]) => `${k} ${(v / n).toFixed(2)} ms (${Math.round((100 * v) / total)}%)`);
    console.log(`    JavaScript CPU per connect, profiled: ${byClass.join(", ")}`);
  }
}

async function run(kind: Kind): Promise<void> {
  const dir = mkdtempSync(join(values.disk ? tmpdir() : "/dev/shm", "nimbus-reconnect-"));
  const vars = {
    ALLOW_ANONYMOUS: "true",
    API_TOKEN: TOKEN,
    LOG_LEVEL: "warn",
    GATEWAYS: values.gateways as string,
    TOPIC_SHARDS: values.shards as string,
    MAX_CONNECTIONS_PER_GATEWAY: String(Math.max(10_000, 2 * clients)),
    CONNECT_TIMEOUT: "120",
  };
  let broker = await startBroker({ persistTo: dir, vars });
  const opened: RawClient[] = [];
  try {
    const ids = Array.from({ length: clients }, (_, i) => `rc-${kind}-${i}`);
    console.log(
      `${kind} sessions, ${clients} clients, ${concurrency} at a time, ${values.gateways} gateway(s) × ` +
        `${values.shards} shard(s), storage on ${values.disk ? "disk" : "tmpfs"}:`,
    );
    report("first connect", await storm(broker, ids, kind, opened), clients);
    const closed = Promise.all(opened.map((c) => c.closed));
    await broker.stop();
    await closed;
    opened.length = 0;
    broker = await startBroker({ persistTo: dir, vars, port: broker.port });
    const profiler = values.profile ? await IsolateProfiler.attach(broker.inspectorPort) : undefined;
    report("after a restart", await storm(broker, ids, kind, opened, profiler), clients);
    profiler?.close();
  } finally {
    for (const c of opened) c.terminate();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const kind of kinds) await run(kind as Kind);
