/**
 * Load scenarios, each bounded in count and in time. Every one returns a number
 * (higher is better for rates, lower for times) and how to print it.
 */
import { LoadClient } from "./client.ts";
import type { Target } from "./targets.ts";

export interface Sizes {
  fanInMessages: number;
  fanOutMessages: number;
  fanOutSubscribers: number;
  latencySeconds: number;
  connections: number;
  retained: number;
  queued: number;
  /** Clients connected when the broker restarts, half of them with persistent sessions. */
  restartClients: number;
}

export const FULL: Sizes = {
  fanInMessages: 20_000,
  fanOutMessages: 100,
  fanOutSubscribers: 200,
  latencySeconds: 5,
  connections: 2_000,
  retained: 10_000,
  queued: 10_000,
  // Not 5,000: under `wrangler dev` the dev proxy holds two sockets per client, and
  // 5,000 clients ran workerd out of its 20,000 file descriptors here.
  restartClients: 2_000,
};

export const QUICK: Sizes = {
  fanInMessages: 1_000,
  fanOutMessages: 10,
  fanOutSubscribers: 50,
  latencySeconds: 1,
  connections: 100,
  retained: 500,
  queued: 500,
  restartClients: 100,
};

export interface Result {
  value: number;
  text: string;
  /** "rate": higher is better; "time": lower is better. */
  kind: "rate" | "time";
}

/**
 * Brackets the message phase of a scenario (after every client has connected and
 * subscribed, until the last message arrived), for the cost model.
 */
export interface Meter {
  start(): Promise<void>;
  stop(): Promise<void>;
}
const noMeter: Meter = { start: async () => {}, stop: async () => {} };

const TIME_LIMIT_MS = 60_000;
let run = 0;
const prefix = () => `bench/${process.pid}-${++run}`;
const payload = new Uint8Array(64).fill(0x61);

function waitUntil(done: () => boolean, limitMs = TIME_LIMIT_MS): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  return new Promise((resolve) => {
    const tick = () => {
      if (done()) return resolve(true);
      if (Date.now() > deadline) return resolve(false);
      setTimeout(tick, 5);
    };
    tick();
  });
}

/** Sends `count` messages, QoS 0 paced by socket back-pressure, QoS 1 with a window. */
async function pump(c: LoadClient, topic: string, count: number, qos: 0 | 1, window = 20): Promise<void> {
  const pending = new Set<Promise<void>>();
  for (let i = 0; i < count; i++) {
    if (qos === 0) {
      await c.publish(topic, payload, 0);
      if (c.buffered > 1 << 20) await waitUntil(() => c.buffered < 1 << 18);
    } else {
      const p = c.publish(topic, payload, 1).then(() => {
        pending.delete(p);
      });
      pending.add(p);
      if (pending.size >= window) await Promise.race(pending);
    }
  }
  await Promise.all(pending);
}

const rate = (n: number, ms: number): Result => {
  const v = (n / ms) * 1000;
  return { value: v, text: `${Math.round(v).toLocaleString("en")} msg/s`, kind: "rate" };
};
const time = (ms: number, complete: boolean): Result => ({
  value: ms,
  text: `${(ms / 1000).toFixed(2)} s${complete ? "" : " (incomplete)"}`,
  kind: "time",
});

export async function fanIn(t: Target, s: Sizes, qos: 0 | 1, meter = noMeter): Promise<Result> {
  const topic = prefix();
  const sub = await LoadClient.connect(t.url, `${topic}-sub`);
  await sub.subscribe(`${topic}/#`, qos);
  const pubs = await Promise.all(
    Array.from({ length: 50 }, (_, i) => LoadClient.connect(t.url, `${topic}-p${i}`)),
  );
  const each = Math.ceil(s.fanInMessages / pubs.length);
  const total = each * pubs.length;
  await meter.start();
  const start = performance.now();
  await Promise.all(pubs.map((p, i) => pump(p, `${topic}/${i}`, each, qos)));
  await waitUntil(() => sub.received >= total);
  const elapsed = performance.now() - start;
  await meter.stop();
  const got = sub.received;
  for (const c of [sub, ...pubs]) c.close();
  return rate(got, elapsed);
}

export async function fanOut(t: Target, s: Sizes, qos: 0 | 1, meter = noMeter): Promise<Result> {
  const topic = prefix();
  const subs: LoadClient[] = [];
  for (let i = 0; i < s.fanOutSubscribers; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, s.fanOutSubscribers - i) }, (_, j) =>
        LoadClient.connect(t.url, `${topic}-s${i + j}`),
      ),
    );
    await Promise.all(batch.map((c) => c.subscribe(topic, qos)));
    subs.push(...batch);
  }
  const pub = await LoadClient.connect(t.url, `${topic}-pub`);
  const total = s.fanOutMessages * subs.length;
  const received = () => subs.reduce((n, c) => n + c.received, 0);
  await meter.start();
  const start = performance.now();
  await pump(pub, topic, s.fanOutMessages, qos);
  await waitUntil(() => received() >= total);
  const elapsed = performance.now() - start;
  await meter.stop();
  const got = received();
  for (const c of [pub, ...subs]) c.close();
  return rate(got, elapsed);
}

/** QoS 1 round trip (publisher → broker → subscriber) at a fixed 200 msg/s. */
export async function latency(t: Target, s: Sizes): Promise<{ p50: Result; p99: Result }> {
  const topic = prefix();
  const sub = await LoadClient.connect(t.url, `${topic}-sub`);
  await sub.subscribe(topic, 1);
  const pub = await LoadClient.connect(t.url, `${topic}-pub`);
  const samples: number[] = [];
  sub.onMessage = (m) => {
    const sent = new DataView(m.payload.buffer, m.payload.byteOffset, 8).getFloat64(0);
    samples.push(m.at - sent);
  };
  const count = s.latencySeconds * 200;
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + i * 5;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const body = new Uint8Array(16);
    new DataView(body.buffer).setFloat64(0, performance.now());
    void pub.publish(topic, body, 1);
  }
  await waitUntil(() => samples.length >= count, 10_000);
  pub.close();
  sub.close();
  samples.sort((a, b) => a - b);
  const q = (p: number) =>
    samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? Number.NaN;
  const ms = (v: number): Result => ({ value: v, text: `${v.toFixed(2)} ms`, kind: "time" });
  return { p50: ms(q(0.5)), p99: ms(q(0.99)) };
}

/** Many clients connect and subscribe; time to all connected, and memory per idle connection. */
export async function connectMany(t: Target, s: Sizes): Promise<{ time: Result; memory: Result }> {
  const topic = prefix();
  const before = t.rss();
  const clients: LoadClient[] = [];
  const start = performance.now();
  for (let i = 0; i < s.connections; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, s.connections - i) }, (_, j) =>
        LoadClient.connect(t.url, `${topic}-c${i + j}`),
      ),
    );
    await Promise.all(batch.map((c, j) => c.subscribe(`${topic}/${i + j}`, 0)));
    clients.push(...batch);
  }
  const elapsed = performance.now() - start;
  await new Promise((r) => setTimeout(r, 1_000));
  const perConnection = Math.max(0, t.rss() - before) / s.connections;
  for (const c of clients) c.close();
  return {
    time: time(elapsed, true),
    memory: { value: perConnection, text: `${(perConnection / 1024).toFixed(1)} KiB`, kind: "time" },
  };
}

/** Retained messages on many topics, delivered to a new wildcard subscriber. */
export async function retainedBurst(t: Target, s: Sizes): Promise<Result> {
  const topic = prefix();
  const pub = await LoadClient.connect(t.url, `${topic}-pub`);
  const pending = new Set<Promise<void>>();
  for (let i = 0; i < s.retained; i++) {
    const p = pub.publish(`${topic}/${i}`, payload, 1, true).then(() => {
      pending.delete(p);
    });
    pending.add(p);
    if (pending.size >= 50) await Promise.race(pending);
  }
  await Promise.all(pending);
  const sub = await LoadClient.connect(t.url, `${topic}-sub`);
  const start = performance.now();
  await sub.subscribe(`${topic}/#`, 1);
  const complete = await waitUntil(() => sub.received >= s.retained);
  const elapsed = performance.now() - start;
  // clear them, so that later runs start clean
  for (let i = 0; i < s.retained; i++) await pub.publish(`${topic}/${i}`, new Uint8Array(0), 0, true);
  pub.close();
  sub.close();
  return time(elapsed, complete);
}

/** QoS 1 messages queued for an offline persistent session, delivered on reconnect. */
export async function offlineQueue(t: Target, s: Sizes): Promise<Result> {
  const topic = prefix();
  const id = `${topic}-persistent`;
  const first = await LoadClient.connect(t.url, id, { clean: false });
  await first.subscribe(topic, 1);
  first.close();
  await first.closed;
  await new Promise((r) => setTimeout(r, 300));
  const pub = await LoadClient.connect(t.url, `${topic}-pub`);
  await pump(pub, topic, s.queued, 1, 50);
  const start = performance.now();
  const again = await LoadClient.connect(t.url, id, { clean: false });
  const complete = await waitUntil(() => again.received >= s.queued);
  const elapsed = performance.now() - start;
  again.close();
  pub.close();
  return time(elapsed, complete);
}

/**
 * Connects clients `ids[i]` (persistent when `persistent(i)`, with `credentials(i)` if
 * given), `parallel` connects at a time, each subscribed.
 */
export async function connectAll(
  t: Target,
  ids: string[],
  persistent: (i: number) => boolean,
  filter: (i: number) => string,
  parallel: number,
  credentials: (i: number) => { username: string; password: string } | undefined = () => undefined,
  /** Told as each client is connected and subscribed (a storm's rate per part of it). */
  onReady: (i: number) => void = () => {},
): Promise<LoadClient[]> {
  const clients: LoadClient[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < ids.length) {
        const i = next++;
        // As clients do, a refused or reset attempt is tried again after a moment.
        for (let attempt = 1; ; attempt++) {
          try {
            const c = await LoadClient.connect(t.url, ids[i] as string, {
              clean: !persistent(i),
              ...credentials(i),
            });
            // A resumed session has its subscription already (MQTT-3.2.2-2).
            if (!c.sessionPresent) await c.subscribe(filter(i), 1);
            clients[i] = c;
            onReady(i);
            break;
          } catch (err) {
            if (attempt >= 20) throw err;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      }
    }),
  );
  return clients;
}

/**
 * A deploy-style restart: `restartClients` clients are connected and subscribed
 * (half with persistent sessions), the broker restarts on the same storage and
 * every socket closes, and all of them come back at once. The time from the
 * broker accepting connections again until every client is back and subscribed
 * (a persistent one by resuming its session, where the broker kept it).
 */
export async function restartStorm(t: Target, s: Sizes): Promise<Result> {
  const topic = prefix();
  const ids = Array.from({ length: s.restartClients }, (_, i) => `${topic}-r${i}`);
  const persistent = (i: number) => i % 2 === 1;
  const filter = (i: number) => `${topic}/${i}`;
  const before = await connectAll(t, ids, persistent, filter, 50);
  const closed = Promise.all(before.map((c) => c.closed));
  await t.restart();
  await closed;
  const start = performance.now();
  // The storm: every client at once, as far as the load generator's 500 sockets opening at a time allow.
  const after = await connectAll(t, ids, persistent, filter, 500);
  const elapsed = performance.now() - start;
  // Persistent sessions resumed, where the broker keeps them across a restart.
  const resumed = after.filter((c, i) => persistent(i) && c.sessionPresent).length;
  for (const c of after) c.close();
  const result = time(elapsed, true);
  const rate = Math.round(ids.length / (elapsed / 1000));
  return {
    ...result,
    text: `${result.text}, ${rate.toLocaleString("en-US")} connects/s (${resumed} of ${ids.length / 2} sessions resumed)`,
  };
}
