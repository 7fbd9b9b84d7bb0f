/**
 * Rules and the way in, under `wrangler dev` with Miniflare's local Queues
 * (README, Integrations): a rule sends matching QoS 1 messages to a Queue whose
 * consumer receives each one (and passes it back in through the broker's own
 * queue); a webhook rule posts to a local HTTP server that fails the first
 * attempts, and gets every message after retries, signed; a restart of the
 * routing object while the webhook is down loses no QoS 1 message.
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { layoutOf, shardOf } from "../../broker/routing.ts";
import { render } from "../../broker/rules.ts";
import { freePort, type RunningBroker, startBroker } from "../support/broker.ts";
import { withIntegrationsPanel } from "../support/browser.ts";
import { connect, Inbox, unique } from "../support/clients.ts";
import { integrationConfigs, verifyStandardWebhook } from "../support/integrations.ts";

const API_TOKEN = "integrations-token";
/** A Standard Webhooks secret: `whsec_` and the key's base64. */
const SECRET = `whsec_${Buffer.from("nimbus-e2e-webhook-key-32-bytes!").toString("base64")}`;
const OUTBOX_BYTES = 64 * 1024;

/** A local HTTP server standing for a webhook: fails while told to, records what it accepts. */
class Webhook {
  readonly bodies: Array<{ topic: string; payload: string }> = [];
  requests = 0;
  failNext = 0;
  badSignatures = 0;
  /** webhook-id of every POST to /in, and whether it was taken. */
  readonly attempts: Array<{ id: string; taken: boolean }> = [];
  /** POSTs that reached where /redirect points: a followed redirect would bring the signed body here. */
  redirected = 0;
  redirects = 0;
  private server: Server | undefined;
  private waiters: Array<() => void> = [];
  readonly port: number;
  constructor(port: number) {
    this.port = port;
  }

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      const text = await read(req);
      if (req.url === "/redirect") {
        this.redirects++;
        res.writeHead(307, { location: "/moved-here" }).end();
        return;
      }
      if (req.url === "/moved-here") {
        this.redirected++;
        res.writeHead(204).end();
        return;
      }
      this.requests++;
      const id = String(req.headers["webhook-id"]);
      if (this.failNext > 0) {
        this.failNext--;
        this.attempts.push({ id, taken: false });
        res.writeHead(503).end();
        return;
      }
      // As a Standard Webhooks library checks it; and the headers of earlier releases, still sent.
      const time = String(req.headers["x-nimbus-timestamp"]);
      const mac = createHmac("sha256", SECRET).update(`${time}.${text}`).digest("hex");
      if (
        verifyStandardWebhook(SECRET, req.headers, text) !== null ||
        req.headers["x-nimbus-signature"] !== `sha256=${mac}`
      ) {
        this.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      this.attempts.push({ id, taken: true });
      this.bodies.push(...(JSON.parse(text) as Array<{ topic: string; payload: string }>));
      for (const w of this.waiters.splice(0)) w();
      res.writeHead(204).end();
    });
    await new Promise<void>((r) => this.server?.listen(this.port, "127.0.0.1", r));
  }

  async stop(): Promise<void> {
    await new Promise((r) => this.server?.close(r));
    this.server?.closeAllConnections();
  }

  async waitFor(n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.bodies.length < n) {
      if (Date.now() > deadline) throw new Error(`webhook got ${this.bodies.length} of ${n}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 500);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

function read(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    req.on("data", (d: Buffer) => {
      text += d.toString();
    });
    req.on("end", () => resolve(text));
  });
}

let broker: RunningBroker;
let webhook: Webhook;
let vars: Record<string, string>;
const clients: MqttClient[] = [];

async function client(): Promise<MqttClient> {
  const c = await connect(broker.url, { protocolVersion: 5, clientId: unique("int") });
  clients.push(c);
  return c;
}

/** Waits until a rule's counts (summed over shards) satisfy `done`. */
async function waitRule(name: string, done: (c: Record<string, number>) => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = (await ruleCounts(name)) as Record<string, number>;
    if (done(c)) return;
    if (Date.now() > deadline) throw new Error(`rule ${name}: ${JSON.stringify(c)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Asks the consumer Worker about the R2 bucket or the D1 database; its report. */
async function probe(what: string): Promise<unknown> {
  const watcher = await client();
  const inbox = new Inbox(watcher);
  await watcher.subscribeAsync(`probe-report/${what}`, { qos: 1 });
  await watcher.publishAsync(`probe/${what}`, "?", { qos: 1 });
  const [report] = await inbox.waitFor(1, 15_000);
  await watcher.endAsync();
  return JSON.parse(report?.payload ?? "null");
}

async function ruleCounts(name: string) {
  const res = await fetch(`${broker.httpUrl}/api/stats`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  const stats = (await res.json()) as { rules: Record<string, Record<string, number>> };
  return stats.rules[name];
}

beforeAll(async () => {
  webhook = new Webhook(await freePort());
  await webhook.start();
  const rules = [
    {
      name: "hot",
      filter: "sensors/+/temp",
      where: [{ field: "value", op: ">", value: 30 }],
      shape: "envelope",
      target: { kind: "queue", binding: "RULES_QUEUE" },
    },
    {
      name: "archive",
      filter: "archive/#",
      shape: "envelope",
      target: { kind: "r2", binding: "ARCHIVE", prefix: "mqtt/", windowSeconds: 1 },
    },
    { name: "rows", filter: "rows/#", target: { kind: "d1", binding: "DB", table: "mqtt_messages" } },
    {
      name: "svc",
      filter: "svc/#",
      shape: "envelope",
      target: { kind: "service", binding: "CONSUMER", path: "/in" },
    },
    // Asks the consumer Worker what the R2 bucket and D1 database hold (see its file).
    {
      name: "probe",
      filter: "probe/#",
      shape: "envelope",
      target: { kind: "queue", binding: "RULES_QUEUE" },
    },
    {
      name: "hook",
      filter: "hook/#",
      shape: "envelope",
      target: { kind: "webhook", url: `http://127.0.0.1:${webhook.port}/in`, secret: "WEBHOOK_SECRET" },
    },
    {
      // Envelopes to a Queue this Worker consumes: each would be published again, forever.
      name: "loop",
      filter: "loop/#",
      shape: "envelope",
      target: { kind: "queue", binding: "LOOP_QUEUE" },
    },
    {
      name: "moved",
      filter: "moved/#",
      shape: "envelope",
      target: { kind: "webhook", url: `http://127.0.0.1:${webhook.port}/redirect`, secret: "WEBHOOK_SECRET" },
    },
  ];
  vars = {
    ALLOW_ANONYMOUS: "true",
    // Rules run at every shard, each for its own topics.
    TOPIC_SHARDS: "4",
    GATEWAYS: "2",
    API_TOKEN,
    WEBHOOK_SECRET: SECRET,
    RULES: JSON.stringify(rules),
    // Small, so a target that is down fills it within one test.
    RULES_OUTBOX_BYTES: String(OUTBOX_BYTES),
  };
  broker = await startBroker({ config: integrationConfigs(), vars });
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker?.stop();
  await webhook?.stop();
});

describe("rules", () => {
  it("a queue rule sends each matching QoS 1 message once to its Queue, whose consumer receives it", async () => {
    const watcher = await client();
    const inbox = new Inbox(watcher);
    await watcher.subscribeAsync("consumed/#", { qos: 1 });
    const pub = await client();
    for (let v = 0; v < 50; v++)
      await pub.publishAsync("sensors/dev1/temp", JSON.stringify({ value: v }), { qos: 1 });
    // 31 to 49 match `value > 30`: 19 messages, each with its envelope.
    const got = await inbox.waitFor(19, 20_000);
    const values = got.map((m) => {
      expect(m.topic).toBe("consumed/sensors/dev1/temp");
      const envelope = JSON.parse(m.payload) as { topic: string; payload: string; qos: number };
      expect(envelope).toMatchObject({ topic: "sensors/dev1/temp", qos: 1 });
      return (JSON.parse(envelope.payload) as { value: number }).value;
    });
    expect(values.sort((a, b) => a - b)).toEqual(Array.from({ length: 19 }, (_, i) => 31 + i));
    expect(await ruleCounts("hot")).toMatchObject({ matched: 19, sent: 19, dead: 0, pending: 0 });
  });

  it("an R2 rule archives a topic tree as newline-delimited JSON objects, one per shard per window, holding every message", async () => {
    const pub = await client();
    for (let i = 0; i < 30; i++)
      await pub.publishAsync(`archive/site${i % 3}/m`, `a${i}`, { qos: (i % 2) as 0 | 1 });
    // The window is a second: afterwards the objects are written (the shard's alarm closes it).
    await waitRule("archive", (c) => c.sent === 30);
    const report = (await probe("r2")) as { objects: Array<{ key: string; text: string }> };
    const lines = report.objects.flatMap((o) =>
      o.text
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l)),
    );
    // QoS 0 too: an archive keeps every message.
    expect(lines.map((l: { payload: string }) => l.payload).sort()).toEqual(
      Array.from({ length: 30 }, (_, i) => `a${i}`).sort(),
    );
    for (const o of report.objects)
      expect(o.key).toMatch(/^mqtt\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/shard-\d+-\d{12}\.ndjson$/);
  }, 30_000);

  it("a D1 rule inserts a row per QoS 1 message into the named table", async () => {
    expect(await probe("d1-init")).toEqual({ ready: true });
    const pub = await client();
    for (let i = 0; i < 25; i++)
      await pub.publishAsync(`rows/dev${i % 5}`, JSON.stringify({ n: i }), { qos: 1 });
    await waitRule("rows", (c) => c.sent === 25);
    const { rows } = (await probe("d1")) as { rows: Array<{ topic: string; payload: string; qos: number }> };
    expect(rows.map((r) => (JSON.parse(r.payload) as { n: number }).n).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 25 }, (_, i) => i),
    );
    expect(rows.every((r) => r.qos === 1 && r.topic.startsWith("rows/dev"))).toBe(true);
  }, 30_000);

  it("a service rule POSTs matching messages to another Worker through its binding", async () => {
    const watcher = await client();
    const inbox = new Inbox(watcher);
    await watcher.subscribeAsync("via-service/#", { qos: 1 });
    const pub = await client();
    for (let i = 0; i < 10; i++) await pub.publishAsync(`svc/dev${i}`, `s${i}`, { qos: 1 });
    const got = await inbox.waitFor(10, 20_000);
    expect(got.map((m) => [m.topic, m.payload]).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => [`via-service/svc/dev${i}`, `s${i}`]).sort(),
    );
    expect(await ruleCounts("svc")).toMatchObject({ matched: 10, sent: 10, dead: 0, pending: 0 });
  });

  it("the way in skips queue messages that are no publish ($SYS, a wildcard, no topic) and publishes the next one", async () => {
    // The report goes to a topic on the shard the forged $SYS message would go to, and
    // the one watcher has both: the Worker hands both to that shard in one call, in
    // order, and the shard delivers to the watcher in order (invariant 3). So once the
    // report is here, a forged message would have been here before it.
    const layout = layoutOf({ topicShards: 4, shardLevels: 1 });
    const forged = "$SYS/broker/forged";
    let level = 0;
    while (shardOf(`same-${level}/report`, layout) !== shardOf(forged, layout)) level++;
    const report = `same-${level}/report`;
    const watcher = await client();
    const inbox = new Inbox(watcher);
    const granted = await watcher.subscribeAsync([forged, report], { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    // The consumer Worker sends three bad bodies ({nope}, $SYS, a wildcard), then the report.
    await watcher.publishAsync("probe/bad-in", `to:${report}`, { qos: 1 });
    await inbox.waitFor(1, 15_000);
    expect(inbox.messages.map((m) => [m.topic, m.payload])).toEqual([
      [report, JSON.stringify({ after: true })],
    ]);
  });

  it("a rule sending envelopes to a Queue this Worker consumes does not republish them: an envelope is no message", async () => {
    const watcher = await client();
    const inbox = new Inbox(watcher);
    await watcher.subscribeAsync("loop/#", { qos: 1 });
    const pub = await client();
    await pub.publishAsync("loop/once", "1", { qos: 1 });
    await waitRule("loop", (c) => c.sent === 1);
    // The consumer's report goes through the same inbound queue after the envelope:
    // once it is here, the envelope was taken (and refused) before it.
    expect(await probe("bad-in")).toEqual({ after: true });
    expect(inbox.messages.map((m) => m.topic)).toEqual(["loop/once"]);
    expect(await ruleCounts("loop")).toMatchObject({ matched: 1, sent: 1 });
  });

  it("a webhook that fails the first attempts gets every QoS 1 message after retries, signed", async () => {
    const pub = await client();
    const topic = `hook/${unique("retry")}`;
    const before = webhook.bodies.length;
    webhook.failNext = 2;
    for (let i = 0; i < 30; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 });
    await webhook.waitFor(before + 30, 20_000);
    const mine = webhook.bodies.filter((b) => b.topic === topic).map((b) => b.payload);
    // At least once: each message arrived, in the order published.
    expect([...new Set(mine)]).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
    expect(webhook.badSignatures).toBe(0);
    // A batch sent again carries the webhook-id of its failed attempts: a receiver can tell.
    const failed = webhook.attempts.filter((a) => !a.taken).map((a) => a.id);
    expect(failed).toHaveLength(2);
    const taken = new Set(webhook.attempts.filter((a) => a.taken).map((a) => a.id));
    for (const id of failed) expect(taken.has(id)).toBe(true);
    expect(new Set(webhook.attempts.map((a) => a.id)).size).toBeLessThan(webhook.attempts.length);
    const counts = await ruleCounts("hook");
    expect(counts?.failed).toBeGreaterThanOrEqual(2);
    expect(counts).toMatchObject({ dead: 0, pending: 0 });
  }, 30_000);

  it("a webhook that redirects is not followed: the signed body never reaches where it points, and the attempt failed", async () => {
    const pub = await client();
    await pub.publishAsync(`moved/${unique("redirect")}`, "secret reading", { qos: 1 });
    await waitRule("moved", (c) => (c.failed ?? 0) >= 1);
    expect(webhook.redirects).toBeGreaterThanOrEqual(1);
    expect(webhook.redirected).toBe(0);
    expect(await ruleCounts("moved")).toMatchObject({ sent: 0, pending: 1 });
  });

  it("QoS 1 messages waiting for a webhook that is down survive a restart of the broker", async () => {
    const pub = await client();
    const topic = `hook/${unique("restart")}`;
    await webhook.stop();
    for (let i = 0; i < 20; i++) await pub.publishAsync(topic, `r${i}`, { qos: 1 });
    // Each stored before its PUBACK; the earlier tests left none of this rule's waiting.
    expect((await ruleCounts("hook"))?.pending).toBe(20);
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker.stop();
    broker = await startBroker({
      config: integrationConfigs(),
      vars,
      port: broker.port,
      persistTo: broker.persistTo,
    });
    await webhook.start();
    const deadline = Date.now() + 40_000;
    while (webhook.bodies.filter((b) => b.topic === topic).length < 20 && Date.now() < deadline)
      await webhook.waitFor(webhook.bodies.length + 1, 40_000);
    const mine = webhook.bodies.filter((b) => b.topic === topic).map((b) => b.payload);
    expect([...new Set(mine)]).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
  }, 60_000);

  it("a target down for long fills the outbox up to RULES_OUTBOX_BYTES; past it, messages are dead-lettered and counted", async () => {
    const pub = await client();
    const topic = `hook/${unique("full")}`;
    await webhook.stop();
    const before = (await ruleCounts("hook")) as Record<string, number>;
    expect(before.pending).toBe(0);
    const payload = "x".repeat(2000);
    for (let i = 0; i < 40; i++) await pub.publishAsync(topic, `${i} ${payload}`, { qos: 1 });
    const after = (await ruleCounts("hook")) as Record<string, number>;
    const dead = (after.dead ?? 0) - (before.dead ?? 0);
    // Each message waits or is dead-lettered; a message counts two bytes a character.
    expect((after.matched ?? 0) - (before.matched ?? 0)).toBe(40);
    expect((after.pending ?? 0) + dead).toBe(40);
    // The outbox counts a body two bytes a character (rule-outbox.ts): as many of
    // the first messages wait as fit in OUTBOX_BYTES, the rest are dead-lettered.
    const bodyBytes = (i: number) =>
      2 *
      JSON.stringify(
        render(
          "envelope",
          {
            id: "",
            topic,
            payload: new TextEncoder().encode(`${i} ${payload}`),
            qos: 1,
            retain: false,
            origin: pub.options.clientId,
          },
          Date.now(),
        ),
      ).length;
    let fit = 0;
    let used = 0;
    while (used + bodyBytes(fit) <= OUTBOX_BYTES) used += bodyBytes(fit++);
    // Nothing else waits in this shard's outbox: the rules whose topics share it
    // sent theirs, and the redirected rule's message, waiting for good, is at another.
    const layout = layoutOf({ topicShards: 4, shardLevels: 1 });
    expect([shardOf(topic, layout), shardOf("moved/x", layout)]).toEqual([1, 3]);
    for (const rule of ["rows", "probe"]) expect((await ruleCounts(rule))?.pending).toBe(0);
    expect(after.pending).toBe(fit);
    expect(dead).toBe(40 - fit);
    // Those that waited arrive once the target is back: the first ones, in order.
    await webhook.start();
    const kept = after.pending ?? 0;
    const deadline = Date.now() + 30_000;
    while (webhook.bodies.filter((b) => b.topic === topic).length < kept && Date.now() < deadline)
      await webhook.waitFor(webhook.bodies.length + 1, 30_000);
    const mine = [...new Set(webhook.bodies.filter((b) => b.topic === topic).map((b) => b.payload))];
    expect(mine).toEqual(Array.from({ length: kept }, (_, i) => `${i} ${payload}`));
  }, 60_000);

  it("the console lists the rules with their counters", async () => {
    await withIntegrationsPanel(broker.httpUrl, API_TOKEN, async (page) => {
      const row = page.locator("#rules tbody tr", { hasText: "hot" });
      await row.waitFor({ timeout: 10_000 });
      const hot = (await ruleCounts("hot")) as Record<string, number>;
      // rule, matched, sent, failed, dead-lettered, dropped, waiting
      expect(await row.locator("td").allTextContents()).toEqual(
        ["hot", hot.matched, hot.sent, hot.failed, hot.dead, hot.dropped, hot.pending].map(String),
      );
      expect(await page.locator("#rules tbody tr").count()).toBe(8);
    });
  }, 60_000);
});
