/**
 * A shard's rules outbox inside workerd, on a real object's SQLite, with a Queue
 * binding that the test controls: batches stay within what a Queue takes (100
 * messages, 256 KB), QoS 1 goes out in order and leaves nothing behind, a message
 * too large for a Queue is dead-lettered at once, and QoS 0 waiting in memory is
 * bounded (RULES_MEMORY_BYTES), dropped and counted past it.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Message } from "../../broker/message.ts";
import { parseRules } from "../../broker/rules.ts";
import {
  RULES_MEMORY_BYTES,
  RULES_SCHEMA,
  RuleOutbox,
} from "../../durable-objects/topic-shard/rule-outbox.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;

function withStorage<T>(name: string, fn: (sql: SqlStorage) => Promise<T>): Promise<T> {
  const stub = bindings.SESSION.get(bindings.SESSION.idFromName(`rule-outbox-${name}`));
  return runInDurableObject(stub, (_instance, state) => fn(state.storage.sql));
}

/** A Queue binding that records each batch; `hold` keeps sends waiting until released. */
function fakeQueue() {
  const batches: unknown[][] = [];
  let release: () => void = () => undefined;
  let held: Promise<void> | undefined;
  return {
    batches,
    hold() {
      held = new Promise((r) => {
        release = r;
      });
    },
    release: () => release(),
    binding: {
      async sendBatch(messages: Array<{ body: unknown }>) {
        if (held !== undefined) await held;
        batches.push(messages.map((m) => m.body));
      },
    },
  };
}

const rule = parseRules(
  JSON.stringify([{ name: "q", filter: "t/#", target: { kind: "queue", binding: "Q" } }]),
).rules;
const message = (i: number, qos: 0 | 1, size = 16): Message => ({
  id: `m${i}`,
  topic: "t/x",
  payload: new TextEncoder().encode(`${i}:`.padEnd(size, "x")),
  qos,
  retain: false,
});

function outbox(
  sql: SqlStorage,
  queue: ReturnType<typeof fakeQueue>,
): { box: RuleOutbox; flushes: Promise<unknown>[] } {
  const flushes: Promise<unknown>[] = [];
  const box = new RuleOutbox({
    sql,
    rules: rule,
    shard: "shard-0",
    maxBytes: 256 * 2 ** 20,
    env: { Q: queue.binding },
    wakeAt: async () => undefined,
    waitUntil: (p) => flushes.push(p),
  });
  return { box, flushes };
}

describe("RuleOutbox", () => {
  it("sends QoS 1 in order, in batches a Queue takes (100 messages, 256 KB), and keeps nothing after", async () => {
    await withStorage("batches", async (sql) => {
      sql.exec(RULES_SCHEMA);
      const queue = fakeQueue();
      const { box, flushes } = outbox(sql, queue);
      queue.hold();
      for (let i = 0; i < 250; i++) box.take(message(i, 1, 2_000));
      queue.release();
      await Promise.all(flushes);
      await box.flush();
      const bodies = queue.batches.flat() as string[];
      expect(bodies.map((b) => Number(b.split(":")[0]))).toEqual(Array.from({ length: 250 }, (_, i) => i));
      for (const batch of queue.batches) {
        expect(batch.length).toBeLessThanOrEqual(100);
        expect(JSON.stringify(batch).length * 2).toBeLessThanOrEqual(256_000);
      }
      expect(box.snapshot().q).toMatchObject({ matched: 250, sent: 250, dead: 0, pending: 0 });
    });
  });

  it("a message larger than a Queue message is dead-lettered at once", async () => {
    await withStorage("large", async (sql) => {
      sql.exec(RULES_SCHEMA);
      const queue = fakeQueue();
      const { box, flushes } = outbox(sql, queue);
      box.take(message(1, 1, 200_000));
      box.take(message(2, 1));
      await Promise.all(flushes);
      expect(box.snapshot().q).toMatchObject({ matched: 2, sent: 1, dead: 1, pending: 0 });
      expect((queue.batches.flat() as string[]).map((b) => b.split(":")[0])).toEqual(["2"]);
    });
  });

  it("QoS 0 waiting in memory is bounded: past RULES_MEMORY_BYTES it is dropped and counted", async () => {
    await withStorage("memory", async (sql) => {
      sql.exec(RULES_SCHEMA);
      const queue = fakeQueue();
      const { box, flushes } = outbox(sql, queue);
      queue.hold();
      // The first message starts a send that waits; the rest wait in memory, each body (the
      // payload as a JSON string: two quotes more) counted two bytes a character.
      const size = 10_000;
      const n = 200;
      for (let i = 0; i < n; i++) box.take(message(i, 0, size));
      const fits = Math.floor(RULES_MEMORY_BYTES / (2 * (size + 2)));
      expect(box.snapshot().q).toMatchObject({ matched: n, dropped: n - 1 - fits });
      queue.release();
      await Promise.all(flushes);
      await box.flush();
      // Those that waited go out, in order; the first went before them.
      const sent = (queue.batches.flat() as string[]).map((b) => Number(b.split(":")[0]));
      expect(sent).toEqual(Array.from({ length: 1 + fits }, (_, i) => i));
      expect(box.snapshot().q).toMatchObject({ sent: 1 + fits, dropped: n - 1 - fits });
    });
  });
});
