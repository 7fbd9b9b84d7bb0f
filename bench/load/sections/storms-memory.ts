/**
 * `node bench/load/sections/storms-memory.ts [clients] [step]`: what a connected
 * client costs the broker's memory. On one Nimbus 1×1, straight to its workerd,
 * clean clients connect and subscribe `step` at a time (500 opening at once) up to
 * `clients`; after each step, the resident memory of the broker's workerd and the
 * JavaScript heap of its isolate with its ArrayBuffers (V8's count, through wrangler's
 * inspector; garbage not yet collected included), and the sockets that workerd holds.
 * Printed, not recorded.
 */
import { readdirSync, readlinkSync } from "node:fs";
import { IsolateProfiler } from "../../../scripts/object-profile.ts";
import type { LoadClient } from "../client.ts";
import { connectAll } from "../scenarios.ts";
import { nimbus } from "../targets.ts";

const [clients = 4_000, step = 1_000] = process.argv.slice(2).map(Number);
const t = await nimbus(1, 1);
try {
  const direct = await (t.direct?.() ?? Promise.resolve(t.url));
  const port = t.inspectorPort?.();
  const inspector = port === undefined ? undefined : await IsolateProfiler.attach(port);
  // V8's heap, the ArrayBuffers' memory outside it and the runtime's own C++ objects
  // on V8's embedder heap (cppgc), as the isolate counts them.
  const heap = async () => {
    const usage = (await inspector?.call("Runtime.getHeapUsage")) as
      | { usedSize: number; backingStorageSize: number; embedderHeapUsedSize: number }
      | undefined;
    const mib = (n: number | undefined) => (n ?? Number.NaN) / 2 ** 20;
    return {
      js: mib(usage?.usedSize) + mib(usage?.backingStorageSize),
      embedder: mib(usage?.embedderHeapUsedSize),
    };
  };
  /** Sockets the broker's busiest workerd holds (its file descriptors are bounded by `ulimit -n`). */
  const sockets = () =>
    Math.max(
      0,
      ...[...(t.workerdCpu?.().keys() ?? [])].map((pid) => {
        try {
          return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
            try {
              return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:");
            } catch {
              return false;
            }
          }).length;
        } catch {
          return 0;
        }
      }),
    );
  const rss = () => (t.workerdRss?.() ?? Number.NaN) / 2 ** 20;
  const held: LoadClient[] = [];
  let before = { rss: rss(), ...(await heap()), n: 0 };
  const show = (now: typeof before) => {
    const per = (a: number, b: number) => (((a - b) * 1024) / Math.max(1, now.n - before.n)).toFixed(1);
    console.log(
      `${now.n} clients: workerd ${now.rss.toFixed(0)} MiB (+${per(now.rss, before.rss)} KiB a client), JavaScript ${now.js.toFixed(1)} MiB (+${per(now.js, before.js)}), runtime objects ${now.embedder.toFixed(1)} MiB (+${per(now.embedder, before.embedder)}), ${sockets()} sockets`,
    );
  };
  show(before);
  for (let n = step; n <= clients; n += step) {
    const ids = Array.from({ length: step }, (_, i) => `mem/${process.pid}-${n - step + i}`);
    held.push(
      ...(await connectAll(
        { ...t, url: direct },
        ids,
        () => false,
        (i) => `${ids[i]}/t`,
        500,
      )),
    );
    const now = { rss: rss(), ...(await heap()), n };
    show(now);
    before = now;
  }
  inspector?.close();
  for (const c of held) c.close();
} finally {
  await t.stop();
}
