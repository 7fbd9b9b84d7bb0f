/**
 * A shard's hand-over inside workerd, on a real object's SQLite (DESIGN.md,
 * "Re-sharding"): the rows that move reach their new shard in calls within
 * RPC_BATCH_BYTES, are deleted only once received, survive a receiver that fails,
 * and a shard that has moved its rows opens at once the next time it starts.
 */
import { runInDurableObject } from "cloudflare:test";

import { env } from "cloudflare:workers";

import { describe, expect, it } from "vitest";

import { type Message, messageBytes, RPC_BATCH_BYTES, RPC_BATCH_MESSAGES } from "../../broker/message.ts";

import type { Place } from "../../broker/placement.ts";

import { type Layout, shardOf } from "../../broker/routing.ts";
import type { MovedRows, Plan, ReshardingRpc } from "../../durable-objects/contracts.ts";
import {
  RESHARDING_SCHEMA,
  Resharding,
  type ShardRows,
} from "../../durable-objects/topic-shard/resharding.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;
const FROM: Layout = { hash: "jump", shards: 4, levels: 1 };
const TO: Layout = { hash: "jump", shards: 8, levels: 1 };
const SELF = 1;
const MiB = 2 ** 20;

function withStorage<T>(name: string, fn: (sql: SqlStorage) => Promise<T>): Promise<T> {
  const stub = bindings.SESSION.get(bindings.SESSION.idFromName(`resharding-${name}`));
  return runInDurableObject(stub, (_instance, state) => fn(state.storage.sql));
}

/** Retained messages of `bytes` (1 MiB unless said) on topics shard 1 holds in the 4-shard layout. */
function retainedAtSelf(n: number, bytes = MiB): Message[] {
  const out: Message[] = [];
  for (let i = 0; out.length < n; i++) {
    const topic = `r${i}/state`;
    if (shardOf(topic, FROM) !== SELF) continue;
    out.push({ id: `m${i}`, topic, payload: new Uint8Array(bytes).fill(i & 0xff), qos: 1, retain: true });
  }
  return out;
}

/** A shard's retained table in memory: rowid → message; what was removed, in order. */
class FakeRows implements ShardRows {
  readonly table = new Map<number, Message>();
  readonly removed: string[] = [];
  /** How many retained rows each removal took: one per round of calls. */
  readonly rounds: number[] = [];
  constructor(messages: Message[]) {
    for (const [i, m] of messages.entries()) this.table.set(i + 1, m);
  }
  scan(kind: keyof MovedRows, after: number, limit: number): Array<{ id: number; place: Place }> {
    if (kind !== "retained") return [];
    return [...this.table]
      .filter(([id]) => id > after)
      .slice(0, limit)
      .map(([id, m]) => ({ id, place: { topic: m.topic } }));
  }
  load(_kind: keyof MovedRows, id: number) {
    const m = this.table.get(id);
    if (m === undefined) return undefined;
    return { rows: { routes: [], members: [], retained: [m] }, bytes: messageBytes(m) };
  }
  remove(kind: keyof MovedRows, ids: number[]): void {
    if (kind === "retained") this.rounds.push(ids.length);
    for (const id of ids) {
      this.removed.push(this.table.get(id)?.topic ?? "?");
      this.table.delete(id);
    }
  }
  accept(): void {
    throw new Error("not a receiver here");
  }
}

/** Other shards: they plan, hand over nothing of their own, and record what they accept. */
function otherShards(rows: FakeRows, options: { failFirst: boolean }) {
  const calls: Array<{ shard: number; topics: string[]; bytes: number }> = [];
  let failures = options.failFirst ? 1 : 0;
  const shard = (index: number): ReshardingRpc => ({
    layoutPlan: async (): Promise<Plan> => ({ version: 2, from: FROM, to: TO }),
    origin: async () => ({ predatesRegistries: false, since: 0 }),
    handOver: async () => undefined,
    accept: async (moved) => {
      // Nothing is deleted at the sender before its receiver has it.
      for (const m of moved.retained) expect(rows.removed).not.toContain(m.topic);
      if (failures > 0) {
        failures--;
        throw new Error("receiver restarted");
      }
      calls.push({
        shard: index,
        topics: moved.retained.map((m) => m.topic),
        bytes: moved.retained.reduce((n, m) => n + messageBytes(m), 0),
      });
    },
  });
  return { calls, shard };
}

/** Shard 1 of the 4-shard layout, asked for the 8-shard one. */
function shardOne(sql: SqlStorage, rows: ShardRows, shard: (i: number) => ReshardingRpc): Resharding {
  return new Resharding({ sql, self: SELF, target: TO, legacy: false, rows, shard, wakeLater: () => {} });
}

describe("Resharding at one shard", () => {
  it("sends what moves within a call's bytes, deletes it once received, keeps the rest, and opens", async () => {
    await withStorage("moves", async (sql) => {
      sql.exec(RESHARDING_SCHEMA);
      const messages = retainedAtSelf(40);
      const rows = new FakeRows(messages);
      const { calls, shard } = otherShards(rows, { failFirst: false });
      const resharding = shardOne(sql, rows, shard);
      expect(resharding.state().resharding).toBe(true);
      await resharding.waiting;
      expect(resharding.state()).toEqual({ version: 2, resharding: false });

      const moving = messages.filter((m) => shardOf(m.topic, TO) !== SELF);
      // The jump hash keeps a topic or moves it to a new shard (4–7), never to another old one.
      for (const m of moving) expect(shardOf(m.topic, TO)).toBeGreaterThanOrEqual(4);
      expect(moving.length).toBeGreaterThan(5);
      expect(moving.length).toBeLessThan(35);
      // Each moving message reached its new shard once; calls stayed within 8 MiB plus one message.
      const received = calls.flatMap((c) => c.topics.map((t) => `${c.shard}:${t}`));
      expect(received.sort()).toEqual(moving.map((m) => `${shardOf(m.topic, TO)}:${m.topic}`).sort());
      for (const c of calls)
        expect(c.bytes).toBeLessThanOrEqual(RPC_BATCH_BYTES + messageBytes(messages[0] as Message));
      expect(calls.length).toBeGreaterThan(1);
      // What stays is what the new layout places here.
      expect([...rows.table.values()].map((m) => m.topic).sort()).toEqual(
        messages
          .filter((m) => shardOf(m.topic, TO) === SELF)
          .map((m) => m.topic)
          .sort(),
      );

      // Started again on the same storage: it holds the new layout, so it opens at once,
      // and asked to hand over version 2 again it sends nothing.
      const again = shardOne(sql, rows, shard);
      expect(again.waiting).toBeNull();
      const before = calls.length;
      await again.handOver({ version: 2, from: FROM, to: TO });
      expect(calls.length).toBe(before);
    });
  });

  it("moves small rows 500 a round (RPC_BATCH_MESSAGES), however little they weigh", async () => {
    await withStorage("many", async (sql) => {
      sql.exec(RESHARDING_SCHEMA);
      const messages = retainedAtSelf(1_500, 16);
      const rows = new FakeRows(messages);
      const { calls, shard } = otherShards(rows, { failFirst: false });
      await shardOne(sql, rows, shard).waiting;
      const moving = messages.filter((m) => shardOf(m.topic, TO) !== SELF).length;
      expect(moving).toBeGreaterThan(RPC_BATCH_MESSAGES);
      expect(calls.reduce((n, c) => n + c.topics.length, 0)).toBe(moving);
      expect(rows.rounds).toEqual([RPC_BATCH_MESSAGES, moving - RPC_BATCH_MESSAGES]);
    });
  });

  it("a receiver that fails is asked again, and every row arrives", async () => {
    await withStorage("retry", async (sql) => {
      sql.exec(RESHARDING_SCHEMA);
      const messages = retainedAtSelf(12);
      const rows = new FakeRows(messages);
      const { calls, shard } = otherShards(rows, { failFirst: true });
      const resharding = shardOne(sql, rows, shard);
      await resharding.waiting;
      const moving = messages.filter((m) => shardOf(m.topic, TO) !== SELF).map((m) => m.topic);
      expect(new Set(calls.flatMap((c) => c.topics))).toEqual(new Set(moving));
      expect(rows.removed.sort()).toEqual(moving.sort());
    });
  }, 15_000);

  it("shard 0 numbers layouts: the first it knew, then each new one the settings ask for", async () => {
    await withStorage("history", async (sql) => {
      sql.exec(RESHARDING_SCHEMA);
      const rows = new FakeRows([]);
      const { shard } = otherShards(rows, { failFirst: false });
      // Storage from before re-sharding: its rows were placed by the modulo hash over 4 shards.
      const zero = new Resharding({
        sql,
        self: 0,
        target: FROM,
        legacy: true,
        rows,
        shard,
        wakeLater: () => {},
      });
      expect(zero.plan(FROM)).toEqual({ version: 2, from: { ...FROM, hash: "modulo" }, to: FROM });
      await zero.waiting;
      expect(zero.plan(FROM)).toEqual({ version: 2, from: { ...FROM, hash: "modulo" }, to: FROM });
      expect(zero.plan(TO)).toEqual({ version: 3, from: FROM, to: TO });
      expect(zero.plan(TO).version).toBe(3);
    });
  });
});
