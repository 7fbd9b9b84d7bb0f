/**
 * `node bench/load/sections/storms-scale.ts [sizes…] [--parallel 500] [--rounds 1]`:
 * does a connect cost more the more clients are connected? On one Nimbus 1×1,
 * straight to the broker's workerd (no dev proxy), a clean storm of each size
 * (default 1,000, 2,000 and 5,000 raw clients connecting and subscribing, 500 at
 * a time, all staying connected until the storm is over), printed with its rate
 * overall and per fifth of its clients (the n/5 that finished first, the next
 * n/5, …): a per-connect cost that grows with the clients connected shows as
 * rates falling from fifth to fifth, and as a lower overall rate at larger n.
 * Printed, not recorded; the workerd's CPU per connect beside it. Sizes need about
 * 2 × n + 1,000 file descriptors in the broker's workerd (`ulimit -n`): past that it
 * crashes, and the line says so. With
 * `--cpuprofile FILE`, the storm of the last size is profiled (scripts/object-profile.ts:
 * the JavaScript CPU per connect of each class of object, and FILE for Chrome DevTools
 * with the bundle's source map in FILE.map).
 */
import { parseArgs } from "node:util";
import { IsolateProfiler } from "../../../scripts/object-profile.ts";
import type { LoadClient } from "../client.ts";
import { connectAll } from "../scenarios.ts";
import { nimbus } from "../targets.ts";
import { restartedSince, runtimes, warmUp } from "./storms.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    parallel: { type: "string", default: "500" },
    rounds: { type: "string", default: "1" },
    cpuprofile: { type: "string" },
  },
});
const sizes = positionals.length > 0 ? positionals.map(Number) : [1_000, 2_000, 5_000];
const parallel = Number(values.parallel);
const rounds = Number(values.rounds);

let runs = 0;

/** n clean clients connect and subscribe, `parallel` at a time; when each was done (ms from the start). */
async function storm(url: string, n: number): Promise<{ done: number[]; clients: LoadClient[] }> {
  const p = `scale/${process.pid}-${++runs}`;
  const ids = Array.from({ length: n }, (_, i) => `${p}-${i}`);
  const done: number[] = [];
  const start = performance.now();
  const clients = await connectAll(
    { ...t, url },
    ids,
    () => false,
    (i) => `${p}/${i}`,
    Math.min(parallel, n),
    undefined,
    () => done.push(performance.now() - start),
  );
  return { done, clients };
}

const t = await nimbus(1, 1);
/** CPU ms of every workerd of the broker (the dev proxy's does next to nothing here). */
const workerdCpu = () =>
  [...(t.workerdCpu?.() ?? new Map<number, number>()).values()].reduce((a, b) => a + b, 0);
try {
  const direct = await (t.direct?.() ?? Promise.resolve(t.url));
  await warmUp(t, direct);
  for (let round = 1; round <= rounds; round++)
    for (const n of sizes) {
      const last = round === rounds && n === sizes.at(-1);
      const port = t.inspectorPort?.();
      const profiler =
        last && values.cpuprofile !== undefined && port !== undefined
          ? await IsolateProfiler.attach(port)
          : undefined;
      await profiler?.start();
      const before = runtimes(t);
      const cpu0 = workerdCpu();
      const { done, clients } = await storm(direct, n);
      const cpu = (workerdCpu() - cpu0) / n;
      if (profiler !== undefined) {
        const shares = await profiler.stop(values.cpuprofile);
        profiler.close();
        const byClass = Object.entries(shares)
          .sort((a, b) => b[1] - a[1])
          .map(([who, ms]) => `${who} ${(ms / n).toFixed(2)}`);
        console.log(`  JavaScript CPU ms a connect, profiled: ${byClass.join(", ")}`);
      }
      done.sort((a, b) => a - b);
      const total = (done.at(-1) as number) / 1000;
      const fifths: string[] = [];
      for (let k = 0; k < 5; k++) {
        const from = k === 0 ? 0 : (done[Math.floor((k * n) / 5) - 1] as number);
        const to = done[Math.floor(((k + 1) * n) / 5) - 1] as number;
        fifths.push(String(Math.round(n / 5 / ((to - from) / 1000))));
      }
      // A runtime that crashed meanwhile was restarted by wrangler: its CPU is lost, its clients came back.
      const crashed = restartedSince(before, t);
      console.log(
        `${n} clients: ${Math.round(n / total)} /s (${total.toFixed(2)} s), per fifth ${fifths.join(" ")} /s, ${crashed ?? `workerd CPU ${cpu.toFixed(2)} ms a connect`}`,
      );
      for (const c of clients) c.close();
      await Promise.race([
        Promise.all(clients.map((c) => c.closed)),
        new Promise((r) => setTimeout(r, 30_000)),
      ]);
    }
} finally {
  await t.stop();
}
