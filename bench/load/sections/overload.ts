/**
 * `npm run bench -- --overload`: floods, with the settings a new user starts with
 * (PUBLISH_RATE 100/s, burst 200) and with the rate cap lifted (an operator with a
 * trusted, busy backend: PUBLISH_RATE 1,000,000). 20 raw clients publish as fast as
 * their sockets take it (50 PUBLISH a frame), QoS 0, and in another run QoS 1 without
 * waiting for PUBACK, while a subscriber reads. Measured: messages delivered to the
 * subscriber a second during the flood, the isolates' heap (inspector) and workerd's
 * resident memory (/proc) at their peak, fresh clients started during the flood (time
 * to connect, subscribe and complete a QoS 1 round trip), how long /api/stats takes to
 * answer afterwards, and what became of the flooders.
 */
import { IsolateProfiler } from "../../../scripts/object-profile.ts";
import { LoadClient } from "../client.ts";
import { quantile } from "../clients/core.ts";
import { FLOOD_PAYLOAD, floodInThread, PER_FRAME } from "../flood.ts";
import { isolateHeap } from "../inspector.ts";
import { fixed, int, machine, table } from "../report.ts";
import { API_TOKEN, nimbus, type Target } from "../targets.ts";

export interface OverloadSizes {
  flooders: number;
  floodSeconds: number;
  qos: Array<0 | 1>;
  caps: Array<"default" | "lifted">;
  /**
   * How clients reach the broker: through wrangler's dev proxy (what `npm start` users
   * see; the proxy buffers what the broker has not read yet without bound), or straight
   * to the broker's workerd (nearer to the edge, where no such proxy sits in between).
   */
  paths: Path[];
  /** A fresh client starts every this many ms during the flood (and one after it). */
  freshEveryMs: number;
}

export const OVERLOAD_FULL: OverloadSizes = {
  flooders: 20,
  floodSeconds: 4,
  qos: [0, 1],
  caps: ["default", "lifted"],
  paths: ["proxy", "direct"],
  freshEveryMs: 400,
};

export const OVERLOAD_QUICK: OverloadSizes = {
  flooders: 5,
  floodSeconds: 2,
  qos: [0],
  caps: ["default"],
  paths: ["proxy"],
  freshEveryMs: 500,
};

export type Path = "proxy" | "direct";

/** The payload of the well-behaved publisher's messages (as the flooders'). */
const PAYLOAD = FLOOD_PAYLOAD;
/** A fresh client that is not through in this time counts as failed. */
const FRESH_LIMIT_MS = 20_000;

interface Fresh {
  /** ms from the start of the flood when the client started. */
  startedAt: number;
  connectMs: number;
  /** QoS 1 publish to its own subscription until the message came back. */
  roundTripMs: number;
  /** From the start of the connect until the message came back. */
  totalMs: number;
  error?: string;
}

/** A client that connects, subscribes to a topic of its own and publishes QoS 1 to it. */
async function fresh(url: string, id: string, startedAt: number): Promise<Fresh> {
  const start = performance.now();
  let c: LoadClient | undefined;
  const work = (async () => {
    c = await LoadClient.connect(url, id, { version: 5 });
    const connectMs = performance.now() - start;
    await c.subscribe(`${id}/own`, 1);
    const echoed = new Promise<void>((resolve) => {
      if (c !== undefined) c.onMessage = () => resolve();
    });
    const sent = performance.now();
    await Promise.all([c.publish(`${id}/own`, new TextEncoder().encode("ping"), 1), echoed]);
    const now = performance.now();
    return { startedAt, connectMs, roundTripMs: now - sent, totalMs: now - start };
  })();
  const failed = (error: string): Fresh => ({
    startedAt,
    connectMs: Number.NaN,
    roundTripMs: Number.NaN,
    totalMs: Number.NaN,
    error,
  });
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<Fresh>((resolve) => {
    timer = setTimeout(() => resolve(failed("not through in 20 s")), FRESH_LIMIT_MS);
  });
  try {
    return await Promise.race([work, limit]);
  } catch (err) {
    return failed(String(err));
  } finally {
    clearTimeout(timer);
    work.catch(() => {}).finally(() => c?.close());
  }
}

/**
 * A well-behaved publisher: QoS 1 to a topic of its own, at most 10 unacknowledged,
 * until `until`. Messages a second acknowledged (its reader is the broker's business:
 * the publisher only goes on when the broker acknowledges).
 */
async function steady(url: string, id: string, until: number): Promise<number> {
  const c = await LoadClient.connect(url, id, { version: 5 });
  const payload = new Uint8Array(PAYLOAD);
  const start = performance.now();
  let acknowledged = 0;
  try {
    while (Date.now() < until) {
      await Promise.all(Array.from({ length: 10 }, () => c.publish(`${id}/steady`, payload, 1)));
      acknowledged += 10;
    }
  } finally {
    c.close();
  }
  return (acknowledged * 1000) / (performance.now() - start);
}

/** Time until /api/stats answers (NaN if not within `limitMs`). */
async function statsAnswer(t: Target, limitMs: number): Promise<number> {
  const start = performance.now();
  try {
    const res = await fetch(`${t.url.replace("ws://", "http://").replace("/mqtt", "")}/api/stats`, {
      headers: { Authorization: `Bearer ${API_TOKEN}` },
      signal: AbortSignal.timeout(limitMs),
    });
    const body = await res.text();
    // OVERLOAD_STATS=1: the statistics after each flood (what was taken, routed, delivered and dropped).
    if (process.env.OVERLOAD_STATS) console.error(body);
    return performance.now() - start;
  } catch {
    return Number.NaN;
  }
}

interface OverloadRow {
  cap: "default" | "lifted";
  path: Path;
  qos: 0 | 1;
  sent: number;
  deliveredPerSecond: number;
  /** After the flood: until a marker published then reached the subscriber, s (NaN: not within 60 s). */
  drainSeconds: number;
  heapPeak: number;
  /** Reads of the heap during the flood that the inspector answered within 2 s, and those it did not. */
  heapReads: { answered: number; silent: number };
  heapAfter: number;
  rssBefore: number;
  rssPeak: number;
  fresh: Fresh[];
  /** The well-behaved publisher's acknowledged messages a second, alone before the flood and during it. */
  steadyAlone: number;
  steadyDuring: number;
  statsMs: number;
  ends: Record<string, number>;
}

async function overloadRun(
  cap: "default" | "lifted",
  qos: 0 | 1,
  path: Path,
  s: OverloadSizes,
): Promise<OverloadRow> {
  const t = await nimbus(1, 1, {
    settings: "defaults",
    name: `Nimbus 1×1, ${cap === "default" ? "default settings" : "PUBLISH_RATE lifted"}`,
    vars: cap === "lifted" ? { PUBLISH_RATE: "1000000", PUBLISH_BURST: "1000000" } : {},
  });
  try {
    const port = t.inspectorPort?.() ?? 0;
    const topic = `flood/${process.pid}/${cap}/${qos}`;
    const url = path === "direct" ? await (t.direct?.() ?? Promise.resolve(t.url)) : t.url;
    const sub = await LoadClient.connect(url, `${topic}-reader`, { version: 5 });
    await sub.subscribe(topic, qos);
    const rssBefore = t.workerdRss?.() ?? Number.NaN;
    const steadyAlone = await steady(url, `${topic}-alone`, Date.now() + 2_000);
    // OVERLOAD_PROFILE=<file>: a V8 CPU profile of the broker's isolate over the flood (scripts/object-profile.ts).
    const profiler = process.env.OVERLOAD_PROFILE ? await IsolateProfiler.attach(port) : undefined;
    await profiler?.start();
    const start = Date.now();
    const until = start + s.floodSeconds * 1000;
    const floods = floodInThread(
      Array.from({ length: s.flooders }, (_, i) => ({ url, id: `${topic}-f${i}`, topic, qos, until })),
    );
    const steadyDuring = steady(url, `${topic}-steady`, until);
    // Sampled until the flood is over: the isolates' heap (each read bounded) and workerd's memory.
    let heapPeak = 0;
    const heapReads = { answered: 0, silent: 0 };
    let rssPeak = rssBefore;
    const sampling = (async () => {
      while (Date.now() < until + 500) {
        rssPeak = Math.max(rssPeak, t.workerdRss?.() ?? 0);
        const heap = await isolateHeap(port, { timeoutMs: 2_000 });
        if (Number.isFinite(heap)) {
          heapPeak = Math.max(heapPeak, heap);
          heapReads.answered++;
        } else heapReads.silent++;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const freshOnes: Array<Promise<Fresh>> = [];
    for (let at = s.freshEveryMs / 2; at < s.floodSeconds * 1000; at += s.freshEveryMs) {
      await new Promise((r) => setTimeout(r, Math.max(0, start + at - Date.now())));
      freshOnes.push(fresh(url, `${topic}-fresh${freshOnes.length}`, at));
    }
    const ends = await floods;
    if (profiler !== undefined) {
      const file = `${process.env.OVERLOAD_PROFILE}-${cap}-${qos}-${path}.cpuprofile`;
      console.error(`  profile ${file}:`, await profiler.stop(file));
      profiler.close();
    }
    const receivedDuring = sub.received;
    const floodMs = Date.now() - start;
    await sampling;
    // One more fresh client once the flood is over, and the API.
    freshOnes.push(fresh(url, `${topic}-after`, Date.now() - start));
    const statsMs = await statsAnswer(t, 10_000);
    // Until what was accepted has reached the reader: a marker published now arrives after it.
    const drainStart = performance.now();
    const marker = await LoadClient.connect(url, `${topic}-marker`, { version: 5 }).catch(() => undefined);
    let drainSeconds = Number.NaN;
    if (marker !== undefined) {
      const arrived = new Promise<void>((resolve) => {
        sub.onMessage = (m) => {
          if (new TextDecoder().decode(m.payload) === "marker") resolve();
        };
      });
      await marker.publish(topic, new TextEncoder().encode("marker"), 1);
      let timer: NodeJS.Timeout | undefined;
      const ok = await Promise.race([
        arrived.then(() => true),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), 60_000);
        }),
      ]);
      clearTimeout(timer);
      if (ok) drainSeconds = (performance.now() - drainStart) / 1000;
      marker.close();
    }
    const heapAfter = await isolateHeap(port, { timeoutMs: 5_000 });
    sub.close();
    const byEnd: Record<string, number> = {};
    for (const e of ends) byEnd[e.end] = (byEnd[e.end] ?? 0) + 1;
    return {
      cap,
      path,
      qos,
      sent: ends.reduce((n, e) => n + e.sent, 0),
      deliveredPerSecond: receivedDuring / (floodMs / 1000),
      drainSeconds,
      heapPeak,
      heapReads,
      heapAfter,
      rssBefore,
      rssPeak,
      fresh: await Promise.all(freshOnes),
      steadyAlone,
      steadyDuring: await steadyDuring,
      statsMs,
      ends: byEnd,
    };
  } finally {
    await t.stop();
  }
}

const mib = (b: number) => (Number.isFinite(b) && b > 0 ? `${(b / 2 ** 20).toFixed(0)} MiB` : "–");
const ms = (x: number) => (Number.isFinite(x) ? `${int(x)} ms` : "–");

export async function overloadSection(s: OverloadSizes, quick: boolean): Promise<string> {
  const rows: OverloadRow[] = [];
  for (const cap of s.caps) {
    for (const qos of s.qos) {
      for (const path of s.paths) {
        console.error(`— overload: ${cap} rate cap, QoS ${qos} flood, ${path}`);
        rows.push(await overloadRun(cap, qos, path, s));
      }
    }
  }
  const freshText = (r: OverloadRow) => {
    const ok = r.fresh.filter((f) => f.error === undefined);
    const total = ok.map((f) => f.totalMs).sort((a, b) => a - b);
    const rtt = ok.map((f) => f.roundTripMs).sort((a, b) => a - b);
    const failed = r.fresh.length - ok.length;
    return [
      `${ok.length} of ${r.fresh.length}${failed > 0 ? ` (${failed} not through in 20 s)` : ""}`,
      `${ms(quantile(total, 0.5))} / ${ms(total.at(-1) ?? Number.NaN)}`,
      `${ms(quantile(rtt, 0.5))} / ${ms(rtt.at(-1) ?? Number.NaN)}`,
    ];
  };
  const body = table(
    [
      "rate cap",
      "flood",
      "clients reach",
      "sent by flooders",
      "delivered to the reader / s, during",
      "drained after (marker)",
      "isolate heap, peak / after",
      "workerd RSS, before / peak",
      "fresh clients through",
      "fresh: connect to round trip, p50 / worst",
      "fresh: QoS 1 round trip, p50 / worst",
      "well-behaved publisher, acknowledged / s: alone / during",
      "/api/stats after",
      "flooders' end",
    ],
    rows.map((r) => [
      r.cap === "default" ? "default (100/s, burst 200)" : "lifted (1,000,000/s)",
      `${s.flooders} × QoS ${r.qos}${r.qos === 1 ? " (no waiting for PUBACK)" : ""}, ${s.floodSeconds} s`,
      r.path === "proxy" ? "dev proxy" : "its workerd",
      int(r.sent),
      int(r.deliveredPerSecond),
      Number.isFinite(r.drainSeconds) ? `${fixed(r.drainSeconds, 1)} s` : "not within 60 s",
      `${mib(r.heapPeak)} / ${mib(r.heapAfter)}${r.heapReads.silent > 0 ? ` (${r.heapReads.silent} of ${r.heapReads.answered + r.heapReads.silent} reads unanswered)` : ""}`,
      `${mib(r.rssBefore)} / ${mib(r.rssPeak)}`,
      ...freshText(r),
      `${int(r.steadyAlone)} / ${int(r.steadyDuring)} (${fixed((100 * r.steadyDuring) / r.steadyAlone, 0)} %)`,
      Number.isFinite(r.statsMs) ? ms(r.statsMs) : "no answer in 10 s",
      Object.entries(r.ends)
        .map(([end, n]) => `${n} ${end}`)
        .join(", "),
    ]),
  );
  return [
    "## Overload",
    "",
    "`npm run bench -- --overload`",
    "",
    machine(
      [
        `- Nimbus 1×1 with its default settings (anonymous clients and the API on), a fresh broker a run, wrangler's local observability off (as the tests run it); "lifted": PUBLISH_RATE and PUBLISH_BURST 1,000,000`,
        `- ${s.flooders} raw MQTT 5.0 clients (in a thread of their own, apart from the clients timed) each writing frames of ${PER_FRAME} PUBLISH (${PAYLOAD}-byte payloads) to one topic while their socket's buffer is under 256 KiB, for ${s.floodSeconds} s; a raw subscriber reads the topic at the flood's QoS`,
        `- a fresh client every ${s.freshEveryMs} ms during the flood and one after it: connect, subscribe to its own topic, publish QoS 1 to it, until the message is back (20 s limit)`,
        "- a well-behaved publisher (raw, QoS 1 to a topic of its own, 10 unacknowledged at most): alone for 2 s before the flood, then during it",
        "- clients reach the broker through wrangler's dev proxy (as `npm start` users do; it buffers what the broker has not read yet, without bound) or straight to the broker's workerd (its entry socket found through /proc; nearer to the edge, where no such proxy sits in between)",
        "- heap: the isolates' JS heap through the inspector (each read bounded to 2 s; an isolate that does not answer is left out of the peak); RSS: the largest workerd process",
      ],
      quick,
    ),
    "",
    body,
  ].join("\n");
}
