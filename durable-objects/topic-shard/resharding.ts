/**
 * Re-sharding a live broker (DESIGN.md, "Re-sharding"): each shard knows the layout
 * whose rows it holds in full; when the deployment's settings ask for another, the
 * shards hand their rows over and answer no topic traffic until they hold all of
 * theirs, so no publish, subscribe or retained read sees half a move.
 *
 * - Shard 0 (every layout has one) keeps the history of layouts, numbered; a shard
 *   whose layout differs from the settings asks it for the plan: this version,
 *   and the layout it follows.
 * - Every shard of the old layout is a sender: it walks its rows, sends each to
 *   its new holders (placement.ts) a page at a time, and deletes what it no
 *   longer holds once the receiver has it. A sender does this once per version,
 *   whoever asks, and again from the start if cut short (receiving twice stores
 *   once).
 * - Every shard of the new layout is a receiver: it asks every sender to hand
 *   over and waits for all of them, then records the new layout and opens.
 * - An alarm keeps a shard that is waiting alive and retries after a failure.
 */
import { log } from "../../broker/log.ts";

import { RPC_BATCH_BYTES, RPC_BATCH_MESSAGES } from "../../broker/message.ts";

import { moveOf, type Place } from "../../broker/placement.ts";

import { allShards, type Layout, sameLayout } from "../../broker/routing.ts";
import type { MovedRows, Origin, Plan, ReshardingRpc } from "../contracts.ts";

export type RowKind = keyof MovedRows;
const KINDS: readonly RowKind[] = ["routes", "members", "retained"];

/** What a shard's tables give the hand-over: rows by their SQLite rowid, in order. */
export interface ShardRows {
  /** Up to `limit` rows of a kind after rowid `after`, with what places each. */
  scan(kind: RowKind, after: number, limit: number): Array<{ id: number; place: Place }>;
  /** One row, to send, with its weight in a call; undefined if gone since the scan. */
  load(kind: RowKind, id: number): { rows: MovedRows; bytes: number } | undefined;
  /** Deletes rows this shard no longer holds (from storage and from memory). */
  remove(kind: RowKind, ids: number[]): void;
  /** Stores rows handed over by another shard, replacing any with the same key. */
  accept(rows: MovedRows): void;
}

export interface ReshardingDeps {
  sql: SqlStorage;
  self: number;
  /** The layout the settings ask for. */
  target: Layout;
  /** Storage from a release before re-sharding: its rows were placed by the modulo hash. */
  legacy: boolean;
  rows: ShardRows;
  shard: (index: number) => ReshardingRpc;
  /** Wakes this shard later if it is still waiting (keeps it alive, retries). */
  wakeLater: (ms: number) => void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS layout (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  hash TEXT,
  shards INTEGER,
  levels INTEGER,
  version INTEGER NOT NULL,
  handed_over INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layouts (
  version INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  shards INTEGER NOT NULL,
  levels INTEGER NOT NULL,
  recorded_at INTEGER NOT NULL
);
`;

/** The tables re-sharding keeps (a migration of TopicShard's schema). */
export const RESHARDING_SCHEMA = SCHEMA;

/** Rows a sender looks at per page of its scan. */
const SCAN_PAGE = 64;
/** Wait before retrying a re-shard that failed, and between wake-ups while waiting (ms). */
const RETRY_MS = 2_000;

/** The `layout` row: the layout whose rows this shard holds in full (null: none yet), and more. */
type LayoutRow = {
  hash: "jump" | "modulo" | null;
  shards: number | null;
  levels: number | null;
  version: number;
  handed_over: number;
};

/** A row of shard 0's `layouts`: one version of the history. */
type HistoryRow = {
  version: number;
  hash: "jump" | "modulo";
  shards: number;
  levels: number;
  recorded_at: number;
};

export type { Origin };

export class Resharding {
  private readonly deps: ReshardingDeps;
  /** Resolves once this shard holds every row of the target layout; null when it does. */
  private gate: Promise<void> | null = null;
  /** The hand-over under way, shared by every receiver asking for it. */
  private handing: { version: number; done: Promise<void> } | null = null;

  constructor(deps: ReshardingDeps) {
    this.deps = deps;
    const held = this.stored();
    if (deps.self === 0) this.startHistory(held);
    const current = this.stored();
    const complete = current === undefined ? undefined : heldLayout(current);
    if (complete !== undefined && sameLayout(complete, deps.target)) return;
    this.gate = this.reshard();
  }

  /** Null when the shard may answer topic traffic; otherwise what to wait for. */
  get waiting(): Promise<void> | null {
    return this.gate;
  }

  /** For stats: the layout version this shard holds, and whether it is moving rows. */
  state(): { version: number; resharding: boolean } {
    return { version: this.stored()?.version ?? 0, resharding: this.gate !== null };
  }

  /** Shard 0: the plan that brings the deployment to `to`, adding it to the history if new. */
  plan(to: Layout): Plan {
    const { sql } = this.deps;
    const history = sql.exec<HistoryRow>("SELECT * FROM layouts ORDER BY version DESC LIMIT 2").toArray();
    const [last, before] = history;
    if (last === undefined) throw new Error("no layout history: only shard 0 plans");
    if (sameLayout(last, to))
      return {
        version: last.version,
        from: before === undefined ? null : layoutOfRow(before),
        to: layoutOfRow(last),
      };
    const version = last.version + 1;
    sql.exec(
      "INSERT INTO layouts (version, hash, shards, levels, recorded_at) VALUES (?, ?, ?, ?, ?)",
      version,
      to.hash,
      to.shards,
      to.levels,
      Date.now(),
    );
    log("info", "reshard_planned", { version, from: describe(last), to: describe(to) });
    return { version, from: layoutOfRow(last), to };
  }

  /** Sends this shard's rows to their holders under `plan.to`, once per version. */
  handOver(plan: Plan): Promise<void> {
    const row = this.stored();
    if (plan.from === null || (row?.handed_over ?? 0) >= plan.version) return Promise.resolve();
    if (this.handing?.version !== plan.version) {
      const done = this.move(plan.from, plan.to).then(() => {
        this.write({ handed_over: plan.version });
        log("info", "reshard_handed_over", { shard: this.deps.self, version: plan.version });
      });
      const handing = { version: plan.version, done };
      this.handing = handing;
      // Once settled, the next ask starts afresh (after a failure: again from the start).
      const clear = () => {
        if (this.handing === handing) this.handing = null;
      };
      done.then(clear, clear);
    }
    return this.handing.done;
  }

  /** The alarm: a waiting shard stays alive until it opens, and tries again if it failed. */
  async alarm(): Promise<void> {
    if (this.gate === null) return;
    this.deps.wakeLater(RETRY_MS * 5);
    await this.gate;
  }

  private async reshard(): Promise<void> {
    const { self, target } = this.deps;
    for (let attempt = 1; ; attempt++) {
      try {
        const plan = self === 0 ? this.plan(target) : await this.deps.shard(0).layoutPlan(target);
        // A new deployment's shard learns there is nothing to move: no alarm for that.
        if (plan.from !== null) {
          this.deps.wakeLater(RETRY_MS * 5);
          const senders = allShards(plan.from.shards);
          await Promise.all(
            senders.map((s) => (s === self ? this.handOver(plan) : this.deps.shard(s).handOver(plan))),
          );
        }
        this.write({ ...target, version: plan.version });
        log("info", "reshard_ready", { shard: self, version: plan.version, layout: describe(target) });
        this.gate = null;
        return;
      } catch (err) {
        log("warn", "reshard_retry", { shard: self, attempt, error: String(err) });
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  /** Walks every row of every kind, sending and deleting as `moveOf` says, a page at a time. */
  private async move(from: Layout, to: Layout): Promise<void> {
    const { rows, self } = this.deps;
    let moved = 0;
    for (const kind of KINDS) {
      const batch = new OutgoingBatch();
      let drop: number[] = [];
      const flush = async () => {
        await Promise.all([...batch.byShard].map(([s, r]) => this.deps.shard(s).accept(r)));
        rows.remove(kind, drop);
        moved += drop.length;
        batch.clear();
        drop = [];
      };
      let after = 0;
      for (;;) {
        const page = rows.scan(kind, after, SCAN_PAGE);
        for (const { id, place } of page) {
          const { keep, sendTo } = moveOf(place, self, from, to);
          if (sendTo.length > 0) {
            const loaded = rows.load(kind, id);
            if (loaded !== undefined) for (const s of sendTo) batch.add(s, loaded);
          }
          if (!keep) drop.push(id);
          after = id;
          if (batch.full) await flush();
        }
        if (page.length < SCAN_PAGE) break;
      }
      await flush();
    }
    log("info", "reshard_moved", { shard: self, rows: moved });
  }

  private stored(): LayoutRow | undefined {
    return this.deps.sql.exec<LayoutRow>("SELECT * FROM layout").toArray()[0];
  }

  private write(change: Partial<Layout> & { version?: number; handed_over?: number }): void {
    const row: LayoutRow = this.stored() ?? {
      hash: null,
      shards: null,
      levels: null,
      version: 0,
      handed_over: 0,
    };
    const next = { ...row, ...change };
    this.deps.sql.exec(
      "INSERT OR REPLACE INTO layout (id, hash, shards, levels, version, handed_over) VALUES (0, ?, ?, ?, ?, ?)",
      next.hash,
      next.shards,
      next.levels,
      next.version,
      next.handed_over,
    );
  }

  /**
   * Shard 0 starts the history with the layout its rows were placed by: the
   * settings' under the modulo hash for a release before re-sharding, or the
   * settings' own for a new deployment (which holds nothing yet, so is complete).
   */
  private startHistory(held: LayoutRow | undefined): void {
    const { sql, target, legacy } = this.deps;
    const any = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM layouts").one().n;
    if (any > 0) return;
    const first: Layout =
      (held === undefined ? undefined : heldLayout(held)) ??
      (legacy ? { ...target, hash: "modulo" } : target);
    sql.exec(
      "INSERT INTO layouts (version, hash, shards, levels, recorded_at) VALUES (1, ?, ?, ?, ?)",
      first.hash,
      first.shards,
      first.levels,
      Date.now(),
    );
    if (held === undefined) this.write({ ...first, version: 1 });
  }
}

function heldLayout(row: LayoutRow): Layout | undefined {
  if (row.hash === null || row.shards === null || row.levels === null) return undefined;
  return { hash: row.hash, shards: row.shards, levels: row.levels };
}

function layoutOfRow(row: HistoryRow): Layout {
  return { hash: row.hash, shards: row.shards, levels: row.levels };
}

function describe(l: Layout): string {
  return `${l.shards} shards × ${l.levels} levels (${l.hash})`;
}

/** Rows waiting to go, per receiving shard, bounded as one call is (RPC_BATCH_BYTES). */
class OutgoingBatch {
  readonly byShard = new Map<number, MovedRows>();
  private bytes = 0;
  private count = 0;

  get full(): boolean {
    return this.bytes >= RPC_BATCH_BYTES || this.count >= RPC_BATCH_MESSAGES;
  }

  add(shard: number, loaded: { rows: MovedRows; bytes: number }): void {
    let to = this.byShard.get(shard);
    if (to === undefined) {
      to = { routes: [], members: [], retained: [] };
      this.byShard.set(shard, to);
    }
    to.routes.push(...loaded.rows.routes);
    to.members.push(...loaded.rows.members);
    to.retained.push(...loaded.rows.retained);
    this.bytes += loaded.bytes;
    this.count++;
  }

  clear(): void {
    this.byShard.clear();
    this.bytes = 0;
    this.count = 0;
  }
}
