/**
 * `npm run bench:profile -- <scenario> [messages] [--cpuprofile FILE]`: where the
 * time of one load scenario goes on Nimbus 1×1 under `wrangler dev`. Prints the
 * CPU time of every process and thread involved (the workerd running the broker,
 * wrangler's own workerd and Node, the load generator) per delivered message,
 * and with --cpuprofile writes a V8 CPU profile of the broker's isolate, taken
 * through wrangler's inspector, to open in Chrome DevTools; with --perf, a native
 * profile of the broker's workerd by Linux `perf` (Debian's linux-perf). Storage
 * is on tmpfs as in `npm run bench`; `--disk` puts it on disk.
 *
 * Scenarios: fanin0, fanin1, fanout0, fanout1, latency, connect (messages / 10 clients),
 * queued (messages queued offline, delivered on reconnect), retained (topics).
 */
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import WebSocket from "ws";
import { startBroker } from "../test/support/broker.ts";
import {
  connectMany,
  fanIn,
  fanOut,
  latency,
  offlineQueue,
  QUICK,
  type Result,
  retainedBurst,
  type Sizes,
} from "./load/scenarios.ts";
import { cpuTicks, processTree, storageDir } from "./load/targets.ts";

const [which = "fanin0", count = "5000"] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const profileAt = process.argv.indexOf("--cpuprofile");
const profileFile = profileAt > 0 ? process.argv[profileAt + 1] : undefined;
const sizes: Sizes = { ...QUICK, fanInMessages: Number(count), fanOutMessages: Number(count) / 50 };

const scenarios: Record<string, (t: Parameters<typeof fanIn>[0]) => Promise<Result | object>> = {
  fanin0: (t) => fanIn(t, sizes, 0),
  fanin1: (t) => fanIn(t, sizes, 1),
  fanout0: (t) => fanOut(t, sizes, 0),
  fanout1: (t) => fanOut(t, sizes, 1),
  latency: (t) => latency(t, { ...sizes, latencySeconds: 3 }),
  connect: (t) => connectMany(t, { ...sizes, connections: Number(count) / 10 }),
  queued: (t) => offlineQueue(t, { ...sizes, queued: Number(count) }),
  retained: (t) => retainedBurst(t, { ...sizes, retained: Number(count) }),
};
const run = scenarios[which];
if (run === undefined) throw new Error(`unknown scenario ${which}: ${Object.keys(scenarios).join(", ")}`);

/** A minimal Chrome DevTools Protocol session over the inspector's WebSocket. */
async function inspector(port: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as Array<{
    webSocketDebuggerUrl: string;
  }>;
  const ws = new WebSocket((targets[0] as { webSocketDebuggerUrl: string }).webSocketDebuggerUrl);
  await new Promise((r) => ws.once("open", r));
  let id = 0;
  const pending = new Map<number, (v: unknown) => void>();
  ws.on("message", (d) => {
    const m = JSON.parse(String(d)) as { id?: number; result?: unknown };
    if (m.id !== undefined) pending.get(m.id)?.(m.result);
  });
  const call = (method: string, params = {}) =>
    new Promise<unknown>((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { call, close: () => ws.close() };
}

const dir = storageDir();
const broker = await startBroker({
  persistTo: dir,
  vars: {
    ALLOW_ANONYMOUS: "true",
    LOG_LEVEL: "warn",
    MAX_QUEUED_MESSAGES: "20000",
    PUBLISH_RATE: "100000",
    PUBLISH_BURST: "100000",
    OUTBOUND_QOS0_RATE: String(2 ** 31),
  },
});
try {
  const target = {
    name: "Nimbus 1×1",
    url: broker.url,
    rss: () => 0,
    // Profiles follow one broker process; a restart is `npm run bench`'s.
    restart: () => Promise.reject(new Error("bench:profile does not restart the broker")),
    stop: () => broker.stop(),
  };
  await run(target); // warm up: the objects exist and the code is compiled
  const pids = [...processTree(broker.pid), process.pid];
  const devtools = profileFile === undefined ? undefined : await inspector(broker.inspectorPort);
  await devtools?.call("Profiler.enable");
  await devtools?.call("Profiler.start");
  // --perf: a native profile of the busiest workerd, to read with `perf report`.
  const busiest = [...cpuTicks(pids)].filter(([k]) => k.includes("workerd")).sort((a, b) => b[1] - a[1])[0];
  const perf =
    process.argv.includes("--perf") && busiest !== undefined
      ? spawn("perf", ["record", "-g", "-o", "perf.data", "-p", busiest[0].split(" ")[0] as string], {
          stdio: "ignore",
        })
      : undefined;
  const before = cpuTicks(pids);
  const start = performance.now();
  const result = await run(target);
  const seconds = (performance.now() - start) / 1000;
  const after = cpuTicks(pids);
  if (perf !== undefined) {
    perf.kill("SIGINT");
    await new Promise((r) => perf.once("exit", r));
    console.log("native profile of the broker's workerd: perf.data (perf report -i perf.data)");
  }
  console.log(`${which}: ${JSON.stringify(result)} in ${seconds.toFixed(2)} s`);
  const delivered = which === "latency" ? 600 : sizes.fanInMessages;
  console.log(`CPU per process and thread (ms, and µs per message of ${delivered}):`);
  for (const [key, ticks] of after) {
    const ms = (ticks - (before.get(key) ?? 0)) * 10; // 100 ticks per second
    if (ms >= 20)
      console.log(
        `${String(ms).padStart(7)} ms ${String(Math.round((ms * 1000) / delivered)).padStart(6)} µs  ${key}`,
      );
  }
  if (devtools !== undefined && profileFile !== undefined) {
    const { profile } = (await devtools.call("Profiler.stop")) as { profile: unknown };
    writeFileSync(profileFile, JSON.stringify(profile));
    console.log(`CPU profile of the broker's isolate: ${profileFile}`);
    devtools.close();
  }
} finally {
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
