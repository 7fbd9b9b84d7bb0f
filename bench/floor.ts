/**
 * `npm run bench:floor [messages]`: what the runtime gives an object that does
 * nothing (bench/floor/worker.ts), under `wrangler dev` as the broker runs; what no
 * broker on it can better:
 *
 * - what workerd spends on one inbound WebSocket message, with the same shape as
 *   the fan-in scenario (50 clients, small binary frames): which part of Nimbus's
 *   cost per message is the runtime's and which is ours;
 * - connects a second: WebSocket upgrades, 500 at a time, each answered once
 *   (the part of a reconnect storm that is not MQTT), through the dev proxy and
 *   straight to the object's workerd;
 * - during a flood (20 clients writing flood-sized frames as fast as their sockets
 *   take them, from a thread of their own): how long a fresh WebSocket takes to
 *   open, and how many small frames a second one other client gets handled (a
 *   subscriber's PUBACKs, each a frame).
 */
import { rmSync } from "node:fs";
import WebSocket from "ws";
import { startBroker } from "../test/support/broker.ts";
import { floodThread } from "./floor/flooders.ts";
import { quantile } from "./load/clients/core.ts";
import { cpuTicks, processTree, storageDir, workerEntry } from "./load/targets.ts";

const total = Number(process.argv[2] ?? "20000");
/** Upgrades in the connects measurement, and at once. */
const CONNECTS = 2_000;
const CONNECTS_AT_ONCE = 500;
/** The flood: its clients, its length, how often a fresh client starts, and one client's bursts of small frames. */
const FLOODERS = 20;
const FLOOD_MS = 4_000;
const FRESH_EVERY_MS = 400;
const BURST = 200;
const CLIENTS = 50;
const frame = new Uint8Array(30); // about a small QoS 0 PUBLISH

const dir = storageDir();
const worker = await startBroker({ config: "bench/floor/wrangler.toml", persistTo: dir });
const sink = (base: string) => `${base.replace(/\/mqtt$/, "")}/sink`;
const url = sink(worker.url);
/** The floor worker's own workerd, without the dev proxy in between (it answers / with "ok"). */
const direct = await workerEntry(worker.pid, { path: "/", ok: async (res) => (await res.text()) === "ok" });
const paths: Array<[string, string]> = [["through the dev proxy", url]];
if (direct !== undefined) paths.push(["straight to its workerd", sink(direct)]);

async function open(at = url): Promise<WebSocket> {
  const ws = new WebSocket(at, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return ws;
}

/** The count of binary frames the object has received (`mine`: on this socket). */
async function count(ws: WebSocket, question: "count" | "mine" = "count"): Promise<number> {
  const reply = new Promise<number>((resolve) => ws.once("message", (d) => resolve(Number(String(d)))));
  ws.send(question);
  return reply;
}

/** Connects a second: `CONNECTS` WebSockets opened, `CONNECTS_AT_ONCE` at a time, each answered once. */
async function connects(at: string): Promise<number> {
  const opened: WebSocket[] = [];
  let started = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTS_AT_ONCE }, async () => {
      while (started < CONNECTS) {
        started++;
        const ws = await open(at);
        await count(ws);
        opened.push(ws);
      }
    }),
  );
  const rate = CONNECTS / ((performance.now() - start) / 1000);
  for (const ws of opened) ws.terminate();
  return rate;
}

/** Small frames a second the object handles from `ws`: a burst of them, then until its answer counts them all. */
async function burstRate(ws: WebSocket): Promise<number> {
  const before = await count(ws, "mine");
  const start = performance.now();
  for (let i = 0; i < BURST; i++) ws.send(new Uint8Array(4));
  const after = await count(ws, "mine");
  if (after - before !== BURST) throw new Error(`${after - before} of ${BURST} frames counted`);
  return BURST / ((performance.now() - start) / 1000);
}

interface UnderFlood {
  framesSent: number;
  /** ms each fresh client took to open its WebSocket and get one answer. */
  fresh: number[];
  /** One other client's small frames handled a second: alone, then during the flood (each burst). */
  alone: number;
  during: number[];
}

async function underFlood(at: string): Promise<UnderFlood> {
  const steady = await open(at);
  await burstRate(steady); // warm up
  const alone = await burstRate(steady);
  const start = Date.now();
  const flood = floodThread(at, FLOODERS, start + FLOOD_MS);
  const fresh: Array<Promise<number>> = [];
  const during: number[] = [];
  const bursts = (async () => {
    while (Date.now() < start + FLOOD_MS) during.push(await burstRate(steady));
  })();
  for (let t = FRESH_EVERY_MS / 2; t < FLOOD_MS; t += FRESH_EVERY_MS) {
    await new Promise((r) => setTimeout(r, Math.max(0, start + t - Date.now())));
    fresh.push(
      (async () => {
        const begun = performance.now();
        const ws = await open(at);
        await count(ws);
        ws.terminate();
        return performance.now() - begun;
      })(),
    );
  }
  const sent = await flood;
  await bursts;
  steady.terminate();
  return { framesSent: sent.reduce((a, b) => a + b, 0), fresh: await Promise.all(fresh), alone, during };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const perSecond = (x: number) => `${Math.round(x).toLocaleString("en")} /s`;

async function run(): Promise<{ seconds: number; received: number }> {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, open));
  const before = await count(clients[0] as WebSocket);
  const start = performance.now();
  await Promise.all(
    clients.map(async (ws) => {
      for (let i = 0; i < total / CLIENTS; i++) {
        ws.send(frame);
        if (ws.bufferedAmount > 1 << 16) await new Promise((r) => setTimeout(r, 1));
      }
    }),
  );
  const deadline = Date.now() + 60_000;
  let received = 0;
  while (received < total && Date.now() < deadline) {
    received = (await count(clients[0] as WebSocket)) - before;
    // each question is a message too: ask seldom
    if (received < total) await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - start) / 1000;
  for (const ws of clients) ws.close();
  return { seconds, received };
}

try {
  await run(); // warm up
  const pids = processTree(worker.pid);
  const ticksBefore = cpuTicks(pids);
  const { seconds, received } = await run();
  const ticksAfter = cpuTicks(pids);
  let busiest = 0;
  for (const [key, t] of ticksAfter)
    if (key.includes("workerd")) busiest = Math.max(busiest, t - (ticksBefore.get(key) ?? 0));
  const cpuMs = busiest * 10; // 100 ticks per second
  console.log(
    `floor: ${received} of ${total} binary WebSocket messages from ${CLIENTS} clients to one object doing nothing: ` +
      `${Math.round(received / seconds).toLocaleString("en")} msg/s, ` +
      `${Math.round((cpuMs * 1000) / Math.max(1, received))} µs of workerd's busiest thread per message`,
  );
  for (const [how, at] of paths)
    console.log(
      `floor, connects ${how}: ${CONNECTS} WebSockets opened (${CONNECTS_AT_ONCE} at a time), each answered once: ` +
        perSecond(await connects(at)),
    );
  for (const [how, at] of paths) {
    const f = await underFlood(at);
    const ms = (x: number) => `${Math.round(x).toLocaleString("en")} ms`;
    console.log(
      `floor, ${FLOODERS} clients flooding ${FLOOD_MS / 1000} s ${how} (${f.framesSent.toLocaleString("en")} frames of 6.5 KB sent): ` +
        `a fresh WebSocket opened and answered in ${ms(quantile(sorted(f.fresh), 0.5))} p50, ${ms(Math.max(...f.fresh))} worst (${f.fresh.length} clients); ` +
        `another client's small frames handled ${perSecond(f.alone)} alone, ${perSecond(quantile(sorted(f.during), 0.5))} p50 during (${f.during.length} bursts of ${BURST})`,
    );
  }
} finally {
  await worker.stop();
  rmSync(dir, { recursive: true, force: true });
}
