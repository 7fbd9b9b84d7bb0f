/**
 * The brokers the load benchmark compares, each started by the script on loopback:
 * Nimbus under `wrangler dev`, Mosquitto (Debian's, with a websockets listener)
 * and Aedes (npm, over `ws`).
 */

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrokerStats } from "../../broker/stats.ts";
import { freePort, startBroker } from "../../test/support/broker.ts";
import { kill, startMosquitto, waitForPort } from "../../test/support/mosquitto.ts";

export interface Target {
  name: string;
  url: string;
  /** Nimbus only: its /api/stats, for the cost model. */
  stats?: () => Promise<BrokerStats>;
  /** Nimbus only: gateways and shards, the objects awake during a scenario. */
  objects?: number;
  /** Nimbus only: wrangler's inspector (the isolates' heap). */
  inspectorPort?: () => number;
  /** Nimbus only: resident memory of the largest workerd process, bytes. */
  workerdRss?: () => number;
  /** Nimbus only: CPU time each workerd process has used, ms, by process id. */
  workerdCpu?: () => Map<number, number>;
  /**
   * Nimbus only: the broker's own workerd, bypassing wrangler's dev proxy (which holds
   * two sockets a client): its WebSocket URL, found anew after each restart.
   */
  direct?: () => Promise<string>;
  /** Resident memory of the broker's processes, bytes (for memory per connection). */
  rss(): number;
  /**
   * Stops the broker and starts it again on the same port and storage, as a
   * deploy does (every socket closes); resolves once it accepts connections.
   */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Where Nimbus keeps its local SQLite files during a benchmark: on tmpfs, as
 * Mosquitto (persistence false) and Aedes (in-memory) keep their state in
 * memory, so the comparison is of brokers rather than of this machine's disk;
 * `--disk` puts them on disk, where every commit of a local object waits for
 * an fsync (on Cloudflare, storage is the platform's, not a local file).
 */
export const storage = process.argv.includes("--disk") || !existsSync("/dev/shm") ? "disk" : "tmpfs";

export function storageDir(): string {
  return mkdtempSync(join(storage === "tmpfs" ? "/dev/shm" : tmpdir(), "nimbus-bench-"));
}

/** The settings the throughput scenarios run with: no per-client rate or queue bound in the way. */
const THROUGHPUT = {
  MAX_QUEUED_MESSAGES: "20000",
  PUBLISH_RATE: "100000",
  PUBLISH_BURST: "100000",
  // The benchmark measures throughput, not the per-client QoS 0 bound.
  OUTBOUND_QOS0_RATE: String(2 ** 31),
};

export const API_TOKEN = "bench-token";

/**
 * Nimbus with `shards` topic shards and `gateways` gateways, anonymous clients and the
 * API on. `settings`: "throughput" (the load scenarios' lifted bounds) or "defaults"
 * (what a new user starts with); `vars` are set over either.
 */
export async function nimbus(
  shards: number,
  gateways: number,
  options: { settings?: "throughput" | "defaults"; vars?: Record<string, string>; name?: string } = {},
): Promise<Target> {
  const dir = storageDir();
  const vars = {
    ALLOW_ANONYMOUS: "true",
    TOPIC_SHARDS: String(shards),
    GATEWAYS: String(gateways),
    LOG_LEVEL: "warn",
    API_TOKEN,
    ...(options.settings === "defaults" ? {} : THROUGHPUT),
    ...options.vars,
  };
  let broker = await startBroker({ persistTo: dir, vars });
  return {
    name: options.name ?? `Nimbus ${shards}×${gateways}`,
    url: broker.url,
    objects: shards + gateways,
    inspectorPort: () => broker.inspectorPort,
    workerdRss: () => largestWorkerdRss(broker.pid),
    workerdCpu: () => workerdCpuMs(broker.pid),
    direct: async () => {
      const url = await workerEntry(broker.pid);
      if (url === undefined) throw new Error("the broker's workerd entry was not found");
      return url;
    },
    stats: async () =>
      (await (
        await fetch(`${broker.httpUrl}/api/stats`, {
          headers: { Authorization: `Bearer ${API_TOKEN}` },
          signal: AbortSignal.timeout(30_000),
        })
      ).json()) as BrokerStats,
    rss: () => processTreeRss(broker.pid),
    restart: async () => {
      await broker.stop();
      broker = await startBroker({ persistTo: dir, vars, port: broker.port });
    },
    stop: async () => {
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The broker's entry answers /api/stats with its statistics. */
const BROKER_PROBE = {
  path: "/api/stats",
  ok: async (res: Response) => "billing" in ((await res.json()) as object),
};

/**
 * The entry socket of the workerd that runs the broker (the one wrangler starts on a
 * port the system picks, beside the dev proxy's workerd on the public port): the
 * listening sockets it holds, from /proc, asked `probe.path` until one answers as
 * `probe.ok` wants (the broker: /api/stats; the floor worker: /).
 */
export async function workerEntry(
  pid: number | undefined,
  probe: { path: string; ok: (res: Response) => Promise<boolean> } = BROKER_PROBE,
): Promise<string | undefined> {
  for (const p of processTree(pid).filter(isWorkerd)) {
    let cmdline: string;
    let fds: string[];
    try {
      cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8");
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    if (!cmdline.includes("entry=127.0.0.1:0")) continue;
    const inodes = new Set<string>();
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p}/fd/${fd}`));
        if (m?.[1] !== undefined) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
    const ports = readFileSync(`/proc/${p}/net/tcp`, "utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      // local address, state 0A (listening), inode
      .filter((f) => f[3] === "0A" && inodes.has(f[9] ?? ""))
      .map((f) => Number.parseInt((f[1] ?? "").split(":")[1] ?? "", 16));
    for (const port of ports) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}${probe.path}`, {
          headers: { Authorization: `Bearer ${API_TOKEN}` },
          signal: AbortSignal.timeout(5_000),
        });
        if (res.status === 200 && (await probe.ok(res))) return `ws://127.0.0.1:${port}/mqtt`;
      } catch {
        // not this one
      }
    }
  }
  return undefined;
}

export async function mosquitto(): Promise<Target> {
  // Debian's mosquitto is built without websockets support, so it is measured over
  // its native TCP transport (which favours it slightly).
  const m = await startMosquitto({ extra: ["max_queued_messages 20000", "max_inflight_messages 100"] });
  return {
    name: "Mosquitto (TCP)",
    url: m.url,
    rss: () => processTreeRss(m.pid()),
    // persistence false: sessions live in memory and end with the process.
    restart: () => m.restart(),
    stop: () => m.stop(),
  };
}

/** Mosquitto over websockets (Debian's 2.0.11 needs a plain listener beside the websockets one). */
export async function mosquittoWs(): Promise<Target> {
  const wsPort = await freePort();
  const m = await startMosquitto({
    extra: [
      "max_queued_messages 20000",
      "max_inflight_messages 100",
      `listener ${wsPort} 127.0.0.1`,
      "protocol websockets",
    ],
  });
  return {
    name: "Mosquitto (websockets)",
    url: `ws://127.0.0.1:${wsPort}/mqtt`,
    rss: () => processTreeRss(m.pid()),
    restart: () => m.restart(),
    stop: () => m.stop(),
  };
}

export async function aedes(): Promise<Target> {
  const port = await freePort();
  const start = async () => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "aedes-server.ts"), String(port)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    await waitForPort(port, child);
    return child;
  };
  let child = await start();
  return {
    name: "Aedes",
    url: `ws://127.0.0.1:${port}/mqtt`,
    rss: () => processTreeRss(child.pid),
    // Aedes keeps sessions in memory: they end with the process.
    restart: async () => {
      await kill(child);
      child = await start();
    },
    stop: () => kill(child),
  };
}

/** The fields of a /proc/<pid>/stat line after the command name (state, ppid, …, utime, stime, …). */
export function statFields(stat: string): string[] {
  // the command name is in parentheses and may itself hold spaces or parentheses
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** Clock ticks of CPU (user + system) per thread, by "pid command/thread". */
export function cpuTicks(pids: number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of pids) {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, 2).join(" ").slice(-60);
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const fields = statFields(stat);
        const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
        const key = `${pid} ${cmd} / ${comm}`;
        out.set(key, (out.get(key) ?? 0) + Number(fields[11]) + Number(fields[12]));
      } catch {
        // the thread ended
      }
    }
  }
  return out;
}

/** A process and its descendants, from /proc. */
export function processTree(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(statFields(stat)[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  const tree: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    tree.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** Sum of VmRSS of a process and its descendants, from /proc. */
export function processTreeRss(pid: number | undefined): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
      total += Number(kb ?? 0) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

const isWorkerd = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "workerd";
  } catch {
    return false;
  }
};

/** CPU time (user + system) of each workerd under a process, ms. */
export function workerdCpuMs(pid: number | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of processTree(pid).filter(isWorkerd)) {
    try {
      const fields = statFields(readFileSync(`/proc/${p}/stat`, "utf8"));
      out.set(p, (Number(fields[11]) + Number(fields[12])) * 10); // 100 clock ticks a second
    } catch {
      // gone
    }
  }
  return out;
}

/** Resident memory of the largest workerd under a process (the one running the broker's isolate), bytes. */
export function largestWorkerdRss(pid: number | undefined): number {
  let largest = 0;
  for (const p of processTree(pid).filter(isWorkerd)) {
    try {
      const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1];
      largest = Math.max(largest, Number(kb ?? 0) * 1024);
    } catch {
      // gone
    }
  }
  return largest;
}
