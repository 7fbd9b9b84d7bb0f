/**
 * Topic aliases (5.0 3.3.2.3.4) both ways, within a gateway's memory: the client's
 * (alias → topic, set by its publishes) and ours towards it (topic → alias).
 *
 * A connection may have TOPIC_ALIAS_MAXIMUM of each, each a topic of up to
 * MAX_TOPIC_LENGTH: 64 aliases of 1,024 characters are 128 KiB a way, which a
 * gateway's 10,000 connections could not all hold in an isolate's 128 MB. So a
 * gateway bounds each way for all its connections together (AliasBudget):
 *
 * - the client's: past the bound, the connection holding the most of them ends
 *   (DISCONNECT 0x97 Quota exceeded), as with the input a gateway holds
 *   (inbound.ts): the one that took the memory pays for it;
 * - ours: past the bound, no new alias is assigned; the topic goes in full,
 *   which a client must always accept.
 */

/** Bytes all connections of a gateway may hold in topic aliases, each way (docs/limits.md). */
export const ALIAS_BYTES = 4 * 2 ** 20;

/** What an alias weighs in memory: its topic (two bytes a character at most) and its map entry. */
export function aliasWeight(topic: string): number {
  return 2 * topic.length + 64;
}

/** Bytes of topic aliases one way, per holder and in all; at most `limit` unless a client set them. */
export class AliasBudget<Holder> {
  readonly limit: number;
  private used = 0;
  private readonly held = new Map<Holder, number>();

  constructor(limit = ALIAS_BYTES) {
    this.limit = limit;
  }

  get bytes(): number {
    return this.used;
  }

  /** Whether `bytes` more fit within the bound. */
  fits(bytes: number): boolean {
    return this.used + bytes <= this.limit;
  }

  change(holder: Holder, delta: number): void {
    const now = (this.held.get(holder) ?? 0) + delta;
    this.used += delta;
    if (now > 0) this.held.set(holder, now);
    else this.held.delete(holder);
  }

  release(holder: Holder): void {
    this.used -= this.held.get(holder) ?? 0;
    this.held.delete(holder);
  }

  /** Past the bound: the holder with the most (it ends, and its aliases with it); within it, undefined. */
  largestPast(): Holder | undefined {
    if (this.used <= this.limit) return undefined;
    let largest: Holder | undefined;
    let most = 0;
    for (const [holder, bytes] of this.held) {
      if (bytes > most) {
        most = bytes;
        largest = holder;
      }
    }
    return largest;
  }
}

/** Both ways' budgets of one gateway. */
export interface AliasBudgets<Holder> {
  /** The clients' aliases: past it, the largest holder ends (0x97). */
  client: AliasBudget<Holder>;
  /** Ours towards the clients: past it, none is assigned. */
  server: AliasBudget<Holder>;
}

/** A gateway's budgets, `bytes` each way. */
export function aliasBudgets<Holder>(bytes = ALIAS_BYTES): AliasBudgets<Holder> {
  return { client: new AliasBudget(bytes), server: new AliasBudget(bytes) };
}

/** One connection's part of a budget, one way: what it charges, until it is released. */
class AliasShare<Holder> {
  /** Its connection ended: nothing is charged any more. */
  released = false;
  private readonly budget: AliasBudget<Holder>;
  private readonly holder: Holder;

  constructor(budget: AliasBudget<Holder>, holder: Holder) {
    this.budget = budget;
    this.holder = holder;
  }

  fits(bytes: number): boolean {
    return this.budget.fits(bytes);
  }

  change(delta: number): void {
    if (!this.released && delta !== 0) this.budget.change(this.holder, delta);
  }

  release(): void {
    this.released = true;
    this.budget.release(this.holder);
  }
}

/**
 * The client's topic aliases (alias → topic). In storage too (handle-publish.ts
 * writes them), so a gateway woken from hibernation reads them from there the
 * first time one is needed.
 */
export class ClientAliases<Holder> {
  private map: Map<number, string> | undefined;
  private readonly share: AliasShare<Holder>;

  constructor(budget: AliasBudget<Holder>, holder: Holder) {
    this.share = new AliasShare(budget, holder);
  }

  /** The topic of `alias`, the map read from `stored` the first time. */
  get(alias: number, stored: () => Map<number, string>): string | undefined {
    return this.loaded(stored).get(alias);
  }

  /** The topic of `alias` if the map is in memory (for writing it out). */
  peek(alias: number): string | undefined {
    return this.map?.get(alias);
  }

  /** Maps `alias` to `topic`; the caller then looks at `budget.largestPast()`. */
  set(alias: number, topic: string, stored: () => Map<number, string>): void {
    if (this.share.released) return;
    const map = this.loaded(stored);
    const before = map.get(alias);
    map.set(alias, topic);
    this.share.change(aliasWeight(topic) - (before === undefined ? 0 : aliasWeight(before)));
  }

  /** The connection ended: its aliases leave memory. */
  release(): void {
    this.map = undefined;
    this.share.release();
  }

  private loaded(stored: () => Map<number, string>): Map<number, string> {
    if (this.share.released) return new Map();
    if (this.map === undefined) {
      this.map = stored();
      let bytes = 0;
      for (const topic of this.map.values()) bytes += aliasWeight(topic);
      this.share.change(bytes);
    }
    return this.map;
  }
}

/**
 * Our topic aliases towards the client (topic → alias), least recently used first:
 * each topic gets an alias the first time it is sent, so repeats carry two bytes
 * instead of the topic; when all are taken, the least recently used is given to
 * the new topic. In memory only: after an eviction the numbering starts afresh,
 * each new assignment sending its topic.
 */
export class ServerAliases<Holder> {
  private readonly byTopic = new Map<string, number>();
  /** Alias numbers given back (`forget`): the client may still map them, so reused only with a topic. */
  private readonly free: number[] = [];
  private next = 1;
  private readonly share: AliasShare<Holder>;

  constructor(budget: AliasBudget<Holder>, holder: Holder) {
    this.share = new AliasShare(budget, holder);
  }

  /**
   * The alias for `topic`, and whether it is assigned now (then the packet carries
   * the topic too); undefined when none can be had within the gateway's bound.
   */
  assign(topic: string, max: number): { alias: number; assigned: boolean } | undefined {
    // Its connection ended: none is assigned any more.
    if (this.share.released) return undefined;
    const known = this.byTopic.get(topic);
    if (known !== undefined) {
      this.byTopic.delete(topic);
      this.byTopic.set(topic, known);
      return { alias: known, assigned: false };
    }
    let delta = aliasWeight(topic);
    let oldest: [string, number] | undefined;
    if (this.free.length === 0 && this.next > max) {
      oldest = this.byTopic.entries().next().value;
      // Every alias up to max is given out, and each is mapped or free: one is mapped.
      if (oldest === undefined) return undefined;
      delta -= aliasWeight(oldest[0]);
    }
    if (delta > 0 && !this.share.fits(delta)) return undefined;
    let alias: number;
    if (oldest !== undefined) {
      this.byTopic.delete(oldest[0]);
      alias = oldest[1];
    } else alias = this.free.pop() ?? this.next++;
    this.byTopic.set(topic, alias);
    this.share.change(delta);
    return { alias, assigned: true };
  }

  /** The packet that would have assigned `topic`'s alias was not sent: the alias is free again. */
  forget(topic: string): void {
    const alias = this.byTopic.get(topic);
    if (alias === undefined) return;
    this.byTopic.delete(topic);
    this.free.push(alias);
    this.share.change(-aliasWeight(topic));
  }

  /** The connection ended: its aliases leave memory. */
  release(): void {
    this.byTopic.clear();
    this.share.release();
  }
}
