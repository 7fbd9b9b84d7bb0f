/**
 * Rules at a shard (README, Integrations): every publish the shard routes is
 * matched against the rules; what matches goes to the rule's target, batched.
 *
 * - QoS 1/2: the rendered message is written to the outbox in the same turn the
 *   shard takes the publish, so before the publisher's acknowledgement; it is
 *   deleted only once its target has taken it. A failed batch is tried again,
 *   after 1 s, 2 s, 4 s … up to 5 min, by the shard's alarm, which survives any
 *   restart; after MAX_ATTEMPTS it is dead-lettered (counted, dropped). A rule's
 *   messages go out in the order they came, a failed batch holding back those
 *   after it. At least once: a target may see a batch again if the shard stops
 *   between sending it and deleting it.
 * - QoS 0: best effort, held in memory (RULES_MEMORY_BYTES at most for all rules)
 *   and sent once; past the bound or on failure it is dropped and counted.
 */
import { takeWithin } from "../../broker/batcher.ts";
import { log } from "../../broker/log.ts";
import type { Message } from "../../broker/message.ts";
import { meets, type Rule, type RuleCounts, render } from "../../broker/rules.ts";
import { SubscriptionIndex } from "../../mqtt/index.ts";
import { limitsOf, type OutgoingItem, send } from "./rule-targets.ts";

export const RULES_SCHEMA = `
CREATE TABLE IF NOT EXISTS rule_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  rule TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  due_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_outbox_by_rule ON rule_outbox (rule, id);
CREATE TABLE IF NOT EXISTS rule_counters (
  rule TEXT PRIMARY KEY,
  matched INTEGER NOT NULL,
  sent INTEGER NOT NULL,
  failed INTEGER NOT NULL,
  dead INTEGER NOT NULL,
  dropped INTEGER NOT NULL
);
`;

/** Tries of one QoS 1/2 batch before its messages are dead-lettered (about 8.5 min in all). */
export const MAX_ATTEMPTS = 10;
const FIRST_RETRY_MS = 1_000;
const LAST_RETRY_MS = 300_000;
/** QoS 0 messages waiting in memory for their targets, all rules together. */
export const RULES_MEMORY_BYTES = 1 * 2 ** 20;
/** The largest row Cloudflare stores is 2 MB: a rendered message past this cannot wait in the outbox. */
const MAX_ROW_BYTES = 1_900_000;
/** When the alarm looks at stored messages at the latest, should the flush after their publish not finish. */
const SAFETY_WAKE_MS = 30_000;
/** Batches one rule sends per flush before the others get their turn (the alarm goes on). */
const BATCHES_PER_TURN = 20;

type Counts = Omit<RuleCounts, "pending">;

export interface RuleOutboxDeps {
  sql: SqlStorage;
  rules: readonly Rule[];
  /** This shard's name: R2 objects and D1 rows carry it (keys are unique per shard). */
  shard: string;
  /** RULES_OUTBOX_BYTES: what may wait in the outbox, all rules together. */
  maxBytes: number;
  env: object;
  /** Makes sure the shard's alarm fires no later than `at`. */
  wakeAt: (at: number) => Promise<void>;
  /** Keeps the object alive while a flush runs after its call returned. */
  waitUntil: (p: Promise<unknown>) => void;
}

export class RuleOutbox {
  private readonly deps: RuleOutboxDeps;
  private readonly index = new SubscriptionIndex<Rule>();
  private readonly counts = new Map<string, Counts>();
  /** QoS 0 messages waiting, per rule, and their bytes together. */
  private readonly memory = new Map<string, OutgoingItem[]>();
  private memoryBytes = 0;
  private memorySeq = 0;
  /** The counters as last written, per rule. */
  private readonly saved = new Map<string, string>();
  /** What waits in the outbox now (bodies' length, two bytes a character at most). */
  private outboxBytes: number;
  private flushing: Promise<void> | null = null;
  /** Whether the safety wake for stored messages is set (take). */
  private armed = false;
  private again = false;

  constructor(deps: RuleOutboxDeps) {
    this.deps = deps;
    for (const r of deps.rules) {
      this.index.add(r.filter, r.name, r);
      this.counts.set(r.name, { matched: 0, sent: 0, failed: 0, dead: 0, dropped: 0 });
    }
    this.outboxBytes =
      2 *
      (deps.sql.exec<{ n: number | null }>("SELECT SUM(LENGTH(body)) AS n FROM rule_outbox").one().n ?? 0);
    for (const row of deps.sql.exec<Counts & { rule: string }>("SELECT * FROM rule_counters")) {
      const { rule, ...counts } = row;
      if (this.counts.has(rule)) this.counts.set(rule, counts);
    }
  }

  get active(): boolean {
    return this.deps.rules.length > 0;
  }

  /**
   * Matches a message the shard routes against the rules; QoS 1/2 ones are stored
   * now (the caller acknowledges the publisher afterwards). Starts a flush.
   */
  take(m: Message): void {
    if (!this.active) return;
    let any = false;
    let stored = false;
    this.index.forEachMatch(m.topic, (rule) => {
      if (!meets(rule.where, m.payload)) return;
      const c = this.countsOf(rule.name);
      c.matched++;
      const body = JSON.stringify(render(rule.shape, m, Date.now()));
      const bytes = 2 * body.length;
      if (bytes > Math.min(MAX_ROW_BYTES, limitsOf(rule.target).maxItemBytes)) {
        if (m.qos > 0) c.dead++;
        else c.dropped++;
        log("warn", "rule_message_too_large", { rule: rule.name, topic: m.topic, bytes });
        return;
      }
      any = true;
      // An archive (R2) keeps QoS 0 too: its window holds messages longer than memory should.
      if (m.qos > 0 || rule.target.kind === "r2") {
        // A target down for long fills the outbox: past its bound, a message is dead-lettered
        // (the publish itself still succeeds: an integration does not hold up the broker).
        if (this.outboxBytes + bytes > this.deps.maxBytes) {
          c.dead++;
          log("warn", "rule_outbox_full", { rule: rule.name, bytes: this.outboxBytes });
          return;
        }
        // An R2 rule's messages wait for their window to close (its first message's).
        const now = Date.now();
        const due = rule.target.kind === "r2" ? now + rule.target.windowSeconds * 1000 : 0;
        this.deps.sql.exec(
          "INSERT INTO rule_outbox (rule, body, created_at, due_at) VALUES (?, ?, ?, ?)",
          rule.name,
          body,
          now,
          due,
        );
        this.outboxBytes += bytes;
        stored = true;
        return;
      }
      if (this.memoryBytes + bytes > RULES_MEMORY_BYTES) {
        c.dropped++;
        return;
      }
      let list = this.memory.get(rule.name);
      if (list === undefined) {
        list = [];
        this.memory.set(rule.name, list);
      }
      list.push({ key: `m${Date.now()}-${++this.memorySeq}`, body, createdAt: Date.now() });
      this.memoryBytes += bytes;
    });
    // Should this object stop before a flush has sent them, the alarm finds them: armed
    // once until a flush has scheduled what is left, not for every message.
    if (stored && !this.armed) {
      this.armed = true;
      this.deps.waitUntil(this.deps.wakeAt(Date.now() + SAFETY_WAKE_MS));
    }
    if (any) this.kick();
  }

  /** Counters per rule, with what waits now (for stats). */
  snapshot(): Record<string, RuleCounts> {
    const pending = new Map(
      this.deps.sql
        .exec<{ rule: string; n: number }>("SELECT rule, COUNT(*) AS n FROM rule_outbox GROUP BY rule")
        .toArray()
        .map((r) => [r.rule, r.n]),
    );
    const out: Record<string, RuleCounts> = {};
    for (const [name, c] of this.counts) out[name] = { ...c, pending: pending.get(name) ?? 0 };
    return out;
  }

  /** Sends what is due; the alarm calls it, and so does every publish that matched (not awaited). */
  flush(): Promise<void> {
    if (this.flushing !== null) {
      this.again = true;
      return this.flushing;
    }
    this.flushing = (async () => {
      try {
        do {
          this.again = false;
          // Side by side: a slow or failing target holds up its own rule only.
          await Promise.all(this.deps.rules.map((rule) => this.flushRule(rule)));
        } while (this.again);
      } catch (err) {
        log("error", "rules_flush_failed", { error: String(err) });
      } finally {
        this.saveCounts();
        // Rows stored while this flush ran are either sent by the next (`again`) or due
        // by the alarm scheduled here: a new safety wake is needed only after it.
        this.armed = false;
        await this.scheduleNext();
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  private kick(): void {
    this.deps.waitUntil(this.flush());
  }

  private async flushRule(rule: Rule): Promise<void> {
    const limits = limitsOf(rule.target);
    const c = this.countsOf(rule.name);
    // QoS 0 first: sent once, dropped if that fails.
    const held = this.memory.get(rule.name) ?? [];
    this.memory.delete(rule.name);
    for (const item of held) this.memoryBytes -= 2 * item.body.length;
    for (const batch of batches(held, limits)) {
      try {
        await send(rule.target, this.deps.env, batch, this.deps.shard);
        c.sent += batch.length;
      } catch (err) {
        c.failed += batch.length;
        c.dropped += batch.length;
        log("warn", "rule_send_failed", { rule: rule.name, qos: 0, count: batch.length, error: String(err) });
      }
    }
    for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
      const now = Date.now();
      if (rule.target.kind === "r2" && !this.windowClosed(rule.name, now, limits.maxItems)) return;
      const rows = this.deps.sql
        .exec<OutboxRow>(
          "SELECT id, body, created_at, attempts, due_at FROM rule_outbox WHERE rule = ? ORDER BY id LIMIT ?",
          rule.name,
          limits.maxItems,
        )
        .toArray();
      // In order: a batch waiting for its retry holds back the rule's later messages. An
      // R2 object takes every message of its window (they were due when the first was).
      const due: OutboxRow[] = [];
      for (const r of rows) {
        if (r.due_at > now && rule.target.kind !== "r2") break;
        // A batch sent again goes as it went, the same rows (so a webhook gets the same
        // webhook-id, and can tell a retry): messages that came since wait for the next.
        if (rule.target.kind !== "r2" && r.attempts !== (due[0]?.attempts ?? r.attempts)) break;
        due.push(r);
      }
      const items = due.map((r) => ({
        key: String(r.id).padStart(12, "0"),
        body: r.body,
        createdAt: r.created_at,
      }));
      const [first] = batches(items, limits);
      if (first === undefined) return;
      const sending = due.slice(0, first.length);
      try {
        await send(rule.target, this.deps.env, first, this.deps.shard);
        this.remove(sending);
        c.sent += sending.length;
      } catch (err) {
        c.failed += sending.length;
        const attempts = (sending[0]?.attempts ?? 0) + 1;
        log("warn", "rule_send_failed", {
          rule: rule.name,
          count: sending.length,
          attempts,
          error: String(err),
        });
        if (attempts >= MAX_ATTEMPTS) {
          this.remove(sending);
          c.dead += sending.length;
          log("error", "rule_dead_letter", { rule: rule.name, count: sending.length });
          continue;
        }
        const at = Date.now() + Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempts - 1));
        for (const r of sending)
          this.deps.sql.exec(
            "UPDATE rule_outbox SET attempts = ?, due_at = ? WHERE id = ?",
            attempts,
            at,
            r.id,
          );
        return;
      }
    }
    // More than a turn's worth: the others go first, this rule goes on at once.
    this.again = true;
  }

  /** Whether an R2 rule's window is over (its first message is due) or its object is full. */
  private windowClosed(rule: string, now: number, maxItems: number): boolean {
    const head = this.deps.sql
      .exec<{ due_at: number }>("SELECT due_at FROM rule_outbox WHERE rule = ? ORDER BY id LIMIT 1", rule)
      .toArray()[0];
    if (head === undefined) return false;
    if (head.due_at <= now) return true;
    const n = this.deps.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM rule_outbox WHERE rule = ?", rule)
      .one().n;
    return n >= maxItems;
  }

  private remove(rows: Array<{ id: number; body: string }>): void {
    for (const r of rows) {
      this.deps.sql.exec("DELETE FROM rule_outbox WHERE id = ?", r.id);
      this.outboxBytes -= 2 * r.body.length;
    }
  }

  private async scheduleNext(): Promise<void> {
    const next = this.deps.sql
      .exec<{ at: number | null }>("SELECT MIN(due_at) AS at FROM rule_outbox")
      .one().at;
    if (next !== null) await this.deps.wakeAt(Math.max(next, Date.now() + 10));
  }

  /** Writes the counters that changed since the last save (a row each: billed). */
  private saveCounts(): void {
    for (const [rule, c] of this.counts) {
      const text = JSON.stringify(c);
      if (this.saved.get(rule) === text) continue;
      this.saved.set(rule, text);
      this.deps.sql.exec(
        "INSERT OR REPLACE INTO rule_counters (rule, matched, sent, failed, dead, dropped) VALUES (?, ?, ?, ?, ?, ?)",
        rule,
        c.matched,
        c.sent,
        c.failed,
        c.dead,
        c.dropped,
      );
    }
  }

  private countsOf(rule: string): Counts {
    return this.counts.get(rule) as Counts;
  }
}

type OutboxRow = { id: number; body: string; created_at: number; attempts: number; due_at: number };

/** Messages cut into batches within a target's limits (one alone may fill one). */
function batches(items: OutgoingItem[], limits: { maxItems: number; maxBytes: number }): OutgoingItem[][] {
  const out: OutgoingItem[][] = [];
  let rest = items;
  while (rest.length > 0) {
    const { taken } = takeWithin(rest, (i) => 2 * i.body.length, limits.maxItems, limits.maxBytes);
    out.push(taken);
    rest = rest.slice(taken.length);
  }
  return out;
}
