/**
 * `npm run bench:floor [messages]`: what workerd spends on one inbound WebSocket
 * message when the object does nothing with it (bench/floor/worker.ts), with the
 * same shape as the fan-in scenario (50 clients, small binary frames). It tells
 * which part of Nimbus's cost per message is the runtime's and which is ours.
 */
import { rmSync } from "node:fs";
import WebSocket from "ws";
import { startBroker } from "../test/support/broker.ts";
import { cpuTicks, processTree, storageDir } from "./load/targets.ts";

const total = Number(process.argv[2] ?? "20000");
const CLIENTS = 50;
const frame = new Uint8Array(30); // about a small QoS 0 PUBLISH

const dir = storageDir();
const worker = await startBroker({ config: "bench/floor/wrangler.toml", persistTo: dir });
const url = `${worker.url.replace(/\/mqtt$/, "")}/sink`;

async function open(): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return ws;
}

/** The count of binary frames the object has received. */
async function count(ws: WebSocket): Promise<number> {
  const reply = new Promise<number>((resolve) => ws.once("message", (d) => resolve(Number(String(d)))));
  ws.send("count");
  return reply;
}

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
} finally {
  await worker.stop();
  rmSync(dir, { recursive: true, force: true });
}
