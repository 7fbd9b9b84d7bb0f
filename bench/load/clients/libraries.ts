/**
 * The client libraries the benchmark drives, each as fleets of publishers and
 * subscribers: MQTT.js 5 in Node (as installed, and with `wholePackets()`), MQTT.js in
 * headless Chromium (the browser build the console bundles), Eclipse Paho in Python,
 * and the benchmark's own raw client as the floor.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { connectWholePackets } from "../../../clients/whole-packets.ts";
import { launchChromium } from "../../../test/support/browser.ts";
import type { FleetPlan, Outcome, Progress, Slice, Traffic } from "./core.ts";
import { Host, type Kit } from "./host.ts";
import { mqttjsKit } from "./mqttjs-kit.ts";
import type {} from "./page.ts";
import { rawKit } from "./raw-kit.ts";

/** A fleet, connected and subscribed, perhaps spread over several pages or processes. */
export interface Fleet {
  start(traffic: Traffic): Promise<void>;
  progress(): Promise<Progress>;
  /** Once every publish is sent: what was published and received. */
  finish(): Promise<Outcome>;
  close(): Promise<void>;
}

export interface ClientLibrary {
  name: string;
  /** Resolves once every client of the fleet is connected and subscribed. */
  open(plan: FleetPlan): Promise<Fleet>;
  /** Ends what the library keeps between fleets (a browser). */
  stop(): Promise<void>;
}

/** Several hosts' shares of one fleet, summed. */
function combined(hosts: Fleet[]): Fleet {
  const all = <T>(f: (h: Fleet) => Promise<T>) => Promise.all(hosts.map(f));
  return {
    start: async (traffic) => {
      await all((h) => h.start(traffic));
    },
    progress: async () =>
      (await all((h) => h.progress())).reduce((a, b) => ({
        published: a.published + b.published,
        received: a.received + b.received,
      })),
    finish: async () =>
      (await all((h) => h.finish())).reduce((a, b) => ({
        published: a.published + b.published,
        received: a.received + b.received,
        latencies: a.latencies.concat(b.latencies),
      })),
    close: async () => {
      await all((h) => h.close());
    },
  };
}

/** Splits `slots` into slices of at most `size`. */
export function slices(slots: number, size: number): Slice[] {
  const out: Slice[] = [];
  for (let from = 0; from < slots; from += size) out.push({ from, to: Math.min(slots, from + size) });
  return out;
}

/** A JavaScript library run in this process. */
function inProcess<C>(name: string, kit: Kit<C>): ClientLibrary {
  return {
    name,
    open: async (plan) => {
      const host = await Host.open(kit, plan, { from: 0, to: plan.slots });
      return {
        start: async (traffic) => host.start(traffic),
        progress: async () => host.progress(),
        finish: () => host.finish(),
        close: () => host.close(),
      };
    },
    stop: async () => {},
  };
}

export const raw = (): ClientLibrary => inProcess("raw (one frame a packet)", rawKit);
export const mqttjsNode = (): ClientLibrary => inProcess("MQTT.js (Node)", mqttjsKit());
export const mqttjsWhole = (): ClientLibrary =>
  inProcess("MQTT.js (Node) + connectWholePackets", mqttjsKit(connectWholePackets));

/**
 * A fleet has several pages, and Chromium throttles the timers of pages that are not
 * in front: a page's publishes would bunch into bursts once a second.
 */
const UNTHROTTLED = [
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
  "--disable-features=IntensiveWakeUpThrottling",
];

/** Clients a page holds: Chromium opens at most 255 WebSockets to one host per profile. */
const SLOTS_PER_PAGE = 100;

/** MQTT.js's browser build, as the console bundles it, in headless Chromium (a page per 100 slots). */
export function mqttjsChromium(): ClientLibrary {
  let browser: Browser | undefined;
  let script: string | undefined;
  return {
    name: "MQTT.js (Chromium)",
    open: async (plan) => {
      script ??= await bundlePage();
      browser ??= await launchChromium(UNTHROTTLED);
      const b = browser;
      const pages = await Promise.all(
        slices(plan.slots, SLOTS_PER_PAGE).map(async (slice) => {
          // A context of its own: its own socket pool.
          const context = await b.newContext();
          const page = await context.newPage();
          await page.addScriptTag({ content: script });
          await page.evaluate(([p, s]) => globalThis.fleet.open(p, s), [plan, slice] as const);
          return inPage(page, () => context.close());
        }),
      );
      return combined(pages);
    },
    stop: async () => {
      await browser?.close();
      browser = undefined;
    },
  };
}

function inPage(page: Page, closeContext: () => Promise<void>): Fleet {
  return {
    start: (traffic) => page.evaluate((t) => globalThis.fleet.start(t), traffic),
    progress: () => page.evaluate(() => globalThis.fleet.progress()),
    finish: () => page.evaluate(() => globalThis.fleet.finish()),
    close: async () => {
      await page.evaluate(() => globalThis.fleet.close());
      await closeContext();
    },
  };
}

/** bench/load/clients/page.ts bundled for the browser, resolving `mqtt` as the console's build does. */
async function bundlePage(): Promise<string> {
  const out = await build({
    entryPoints: [join(import.meta.dirname, "page.ts")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "warning",
  });
  return out.outputFiles[0]?.text ?? "";
}

/** Debian's Python, which has python3-paho-mqtt (another python3 may come first on PATH). */
const PYTHON = process.env.PAHO_PYTHON ?? "/usr/bin/python3";

/** Python processes hold at most this many slots each (a thread per client). */
const SLOTS_PER_PROCESS = 100;

/** Eclipse Paho (python3-paho-mqtt), a process per 100 slots. */
export function paho(): ClientLibrary {
  return {
    name: "Paho (Python)",
    open: async (plan) => {
      const hosts = slices(plan.slots, SLOTS_PER_PROCESS).map((slice) => pahoHost(plan, slice));
      try {
        await Promise.all(hosts.map((h) => h.ready));
      } catch (err) {
        await Promise.all(hosts.map((h) => h.kill()));
        throw err;
      }
      return combined(hosts.map((h) => h.fleet));
    },
    stop: async () => {},
  };
}

function pahoHost(plan: FleetPlan, slice: Slice) {
  const child: ChildProcess = spawn(PYTHON, [join(import.meta.dirname, "paho_fleet.py")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const answers: Array<(line: unknown) => void> = [];
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) =>
    answers.shift()?.(JSON.parse(line)),
  );
  const ask = <T>(cmd: object): Promise<T> =>
    new Promise((resolve, reject) => {
      answers.push((a) => {
        const error = (a as { error?: string }).error;
        if (error !== undefined) reject(new Error(`Paho: ${error}`));
        else resolve(a as T);
      });
      child.stdin?.write(`${JSON.stringify(cmd)}\n`);
    });
  const tell = (cmd: object) => child.stdin?.write(`${JSON.stringify(cmd)}\n`);
  const kill = async () => {
    child.kill("SIGKILL");
    await exited;
  };
  const fleet: Fleet = {
    start: async (traffic) => {
      tell({ cmd: "start", traffic });
    },
    progress: () => ask<Progress>({ cmd: "progress" }),
    finish: () => ask<Outcome>({ cmd: "finish" }),
    close: async () => {
      await ask({ cmd: "close" });
      child.stdin?.end();
      await exited;
    },
  };
  return { ready: ask({ cmd: "open", plan, slice }), fleet, kill };
}

export function allLibraries(): ClientLibrary[] {
  return [raw(), mqttjsNode(), mqttjsWhole(), mqttjsChromium(), paho()];
}
