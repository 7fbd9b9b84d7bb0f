/**
 * Starts the real broker under `wrangler dev` (workerd + Miniflare) on loopback,
 * on free ports, with its own persistence folder, for end-to-end tests.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export interface BrokerOptions {
  vars?: Record<string, string>;
  /** Reuse a persistence folder, to restart a broker with its state. */
  persistTo?: string;
  port?: number;
  /**
   * Another wrangler configuration than the project's (the benchmark's floor worker);
   * several run together in one `wrangler dev`, the first answering on the port.
   */
  config?: string | string[];
  /** What answers once the broker is up: GET / with 200 unless told (a broker refusing its settings answers 500 wherever the Worker runs first). */
  ready?: { path: string; status: number };
}

export interface RunningBroker {
  url: string;
  /** Process id of wrangler (leader of its process group). */
  pid: number | undefined;
  httpUrl: string;
  port: number;
  /** wrangler's DevTools inspector (for CPU profiles of the Worker and its objects). */
  inspectorPort: number;
  persistTo: string;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const ROOT = resolve(import.meta.dirname, "../..");

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export async function startBroker(options: BrokerOptions = {}): Promise<RunningBroker> {
  // A port free when asked for may be taken before wrangler binds it (other suites
  // start brokers at the same moment): then the broker starts again on others.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options);
    } catch (err) {
      const taken = String(err).includes("Address already in use");
      if (!taken || options.port !== undefined || attempt === 3) throw err;
    }
  }
}

async function launch(options: BrokerOptions): Promise<RunningBroker> {
  const port = options.port ?? (await freePort());
  const inspector = await freePort();
  const persistTo = options.persistTo ?? mkdtempSync(join(tmpdir(), "nimbus-e2e-"));
  const args = [
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspector),
    "--persist-to",
    persistTo,
    "--show-interactive-dev-session=false",
  ];
  for (const config of [options.config ?? []].flat()) args.push("--config", config);
  for (const [k, v] of Object.entries(options.vars ?? {})) args.push("--var", `${k}:${v}`);
  const child = spawn(join(ROOT, "node_modules/.bin/wrangler"), args, {
    cwd: ROOT,
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      // wrangler dev streams a tail event of every invocation (each WebSocket
      // message, each RPC) to its local observability collector; that tripled
      // workerd's CPU per message. Production runs no tail worker unless configured.
      X_LOCAL_OBSERVABILITY: "false",
      NO_COLOR: "1",
      CI: "true",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const httpUrl = `http://127.0.0.1:${port}`;
  await waitReady(child, httpUrl, () => output, options.ready ?? { path: "/", status: 200 });
  return {
    url: `ws://127.0.0.1:${port}/mqtt`,
    pid: child.pid,
    httpUrl,
    port,
    inspectorPort: inspector,
    persistTo,
    logs: () => output,
    stop: (signal = "SIGTERM") => stop(child, signal),
  };
}

async function waitReady(
  child: ChildProcess,
  httpUrl: string,
  output: () => string,
  ready: { path: string; status: number },
): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output()}`);
    try {
      const res = await fetch(`${httpUrl}${ready.path}`);
      if (res.status === ready.status) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop(child, "SIGKILL");
  throw new Error(`wrangler dev did not become ready:\n${output()}`);
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // gone
      }
    }, 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      res();
    });
    try {
      // the whole process group: wrangler and its workerd
      process.kill(-(child.pid as number), signal);
    } catch {
      res();
    }
  });
}

/**
 * CPU seconds the workerd processes of a broker have used so far: the runtime
 * that runs its Worker and objects (the one wrangler attaches its inspector to),
 * and wrangler's proxy in front of it, which passes every WebSocket frame on and
 * has no counterpart on Cloudflare. Linux only (/proc); zeros elsewhere.
 */
export function workerdCpu(broker: RunningBroker): { runtime: number; proxy: number } {
  const cpu = { runtime: 0, proxy: 0 };
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return cpu;
  }
  for (const pid of pids) {
    let stat: string;
    let cmdline: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the name: state, ppid, pgrp, … utime and stime are the 12th and 13th, in 1/100 s (USER_HZ).
    if (comm !== "workerd" || Number(fields[2]) !== broker.pid) continue;
    const seconds = (Number(fields[11]) + Number(fields[12])) / 100;
    if (cmdline.includes("--inspector-addr")) cpu.runtime += seconds;
    else cpu.proxy += seconds;
  }
  return cpu;
}

/** The counters of every gateway, summed, from /api/stats (the API must be on). */
export async function gatewayCounters(httpUrl: string, apiToken: string): Promise<Record<string, number>> {
  const res = await fetch(`${httpUrl}/api/stats`, {
    headers: { authorization: `Bearer ${apiToken}` },
    signal: AbortSignal.timeout(5_000),
  });
  if (res.status !== 200) throw new Error(`/api/stats answered ${res.status}`);
  const stats = (await res.json()) as { gateways: Array<{ counters: Record<string, number> }> };
  const sum: Record<string, number> = {};
  for (const g of stats.gateways) {
    for (const [k, v] of Object.entries(g.counters)) sum[k] = (sum[k] ?? 0) + v;
  }
  return sum;
}

/** What GET /api/clients/{id} answers: its status and, when 200, its body. */
export async function clientInfo(
  httpUrl: string,
  apiToken: string,
  clientId: string,
): Promise<{ status: number; body: { online?: boolean; queued?: number } | null }> {
  const res = await fetch(`${httpUrl}/api/clients/${encodeURIComponent(clientId)}`, {
    headers: { authorization: `Bearer ${apiToken}` },
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: res.status === 200 ? await res.json() : null };
}

/**
 * Resolves once the HTTP API's answer about a client id satisfies `done`: for
 * waiting until the broker has handled a drop or a removal, where a fixed sleep
 * would only hope.
 */
export async function clientState(
  httpUrl: string,
  apiToken: string,
  clientId: string,
  done: (info: Awaited<ReturnType<typeof clientInfo>>) => boolean,
  timeoutMs = 8_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await clientInfo(httpUrl, apiToken, clientId);
    if (done(info)) return;
    if (Date.now() > deadline) throw new Error(`${clientId}: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once the broker has seen `clientId`'s connection end and keeps its session offline. */
export function offline(httpUrl: string, apiToken: string, clientId: string): Promise<void> {
  return clientState(
    httpUrl,
    apiToken,
    clientId,
    ({ status, body }) => status === 200 && body?.online === false,
  );
}
