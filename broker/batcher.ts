/**
 * Batches calls per key with at most one call in flight per key: items added
 * while a call is under way go out together in the next one. Under load this
 * turns many small RPCs into few large ones; and since calls for one key never
 * overlap, items reach the other side in the order they were added (DESIGN.md
 * invariant 3). A call may answer with one result per item.
 *
 * Traffic spread in time does not pile up behind a call in flight: when calls
 * are rarer than their round trip, each carries one item. So a batcher may space
 * its calls (`spacingMs`): a call for a key starts no sooner than `spacingMs`
 * after the previous one for that key started, and items arriving meanwhile
 * wait for it together. A key idle for `spacingMs` sends at once, so a lone
 * item is never held; only a key that called within the last `spacingMs` waits,
 * at most that long, and a call's worth waiting goes at once (as does a key
 * its caller hurries). A key then makes at most 1000 / `spacingMs` calls a
 * second while its calls are not full, however its items are spread.
 *
 * A call carries at most `maxItems` items and `maxBytes` bytes as `sizeOf`
 * counts them (an item larger than that goes alone): a call between objects
 * holds at most 32 MiB serialized on Cloudflare, and a batch past it would fail
 * for every item in it (invariant 6).
 */
/**
 * The first of `items`, read one at a time, within `maxItems` and `maxBytes`
 * together (one at least, however large), and whether any was left: reads at
 * most one item past those it takes. The rule every byte-bounded batch, page
 * and read-ahead follows.
 */
export function takeWithin<T>(
  items: Iterable<T>,
  bytesOf: (item: T) => number,
  maxItems: number,
  maxBytes: number,
): { taken: T[]; more: boolean } {
  const taken: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = bytesOf(item);
    if (taken.length > 0 && (taken.length >= maxItems || bytes + size > maxBytes))
      return { taken, more: true };
    taken.push(item);
    bytes += size;
  }
  return { taken, more: false };
}

interface Pending<T, R> {
  item: T;
  /** The item's size as `sizeOf` counts it, counted once. */
  size: number;
  resolve: (result: R | undefined) => void;
  reject: (err: unknown) => void;
}

export interface BatchLimits<T> {
  maxItems: number;
  maxBytes: number;
  sizeOf: (item: T) => number;
  /** The least time from one call's start to the next one's for a key (ms); 0 or absent: none. */
  spacingMs?: number;
}

/**
 * The spacing of a gateway's publish calls to each shard (ms). With messages
 * arriving at random at r a millisecond, a call then waits out the spacing W,
 * then for the next message: W + e^(-rW)/r between calls. At 200 a second
 * (r = 0.2) and W = 8 that is 9 ms, 111 calls a second instead of 200; a message
 * waits at most W, and only when its gateway called that shard within the last W.
 * A shard's deliveries are not spaced: a publisher's acknowledgement waits for
 * them, and the shard cannot tell which publisher is near its Receive Maximum
 * (inbound.ts hurries those).
 */
export const MESSAGE_SPACING_MS = 8;

/** When the keys that last called are swept for those idle since (at least this many kept). */
const SWEEP_AT = 64;

export class KeyedBatcher<K, T, R = void> {
  /** Bytes (as `sizeOf` counts them) of the items added and not yet answered, all keys together. */
  pendingBytes = 0;
  /** Items added and not yet answered, all keys together. */
  pendingItems = 0;
  private readonly queues = new Map<K, Pending<T, R>[]>();
  /** Bytes added and not yet answered, per key. */
  private readonly keyBytes = new Map<K, number>();
  private readonly busy = new Set<K>();
  /** When each key's last call started (Date.now()), while that may still hold the next one back. */
  private readonly lastStart = new Map<K, number>();
  private sweepAt = SWEEP_AT;
  /** Ends the wait of a key whose next call is held back (spacing), to send at once. */
  private readonly wakers = new Map<K, () => void>();
  /** Keys whose next call goes without waiting for the spacing (`hurry`). */
  private readonly hurried = new Set<K>();
  private readonly send: (key: K, items: T[]) => Promise<R[] | undefined>;
  private readonly limits: BatchLimits<T>;

  constructor(send: (key: K, items: T[]) => Promise<R[] | undefined>, limits: BatchLimits<T>) {
    this.send = send;
    this.limits = limits;
  }

  /** Resolves, with the item's result if the call gave one, once the call carrying it has completed. */
  add(key: K, item: T): Promise<R | undefined> {
    return new Promise<R | undefined>((resolve, reject) => {
      let queue = this.queues.get(key);
      if (queue === undefined) {
        queue = [];
        this.queues.set(key, queue);
      }
      const size = this.limits.sizeOf(item);
      queue.push({ item, size, resolve, reject });
      this.pendingBytes += size;
      this.pendingItems++;
      const bytes = (this.keyBytes.get(key) ?? 0) + size;
      this.keyBytes.set(key, bytes);
      if (!this.busy.has(key)) void this.flush(key);
      // While a key waits, nothing of it is in flight: its bytes are its queue's.
      else if (queue.length >= this.limits.maxItems || bytes >= this.limits.maxBytes)
        this.wakers.get(key)?.();
    });
  }

  /**
   * The next call for `key` goes without waiting for the spacing: at once if it
   * waits now, else as soon as the call under way has ended. For a caller that
   * knows someone is waiting on what it added (a publisher near its Receive Maximum).
   */
  hurry(key: K): void {
    if (!this.busy.has(key)) return;
    this.hurried.add(key);
    this.wakers.get(key)?.();
  }

  /** Bytes added for `key` and not yet answered (in the call under way or waiting for the next). */
  pendingBytesOf(key: K): number {
    return this.keyBytes.get(key) ?? 0;
  }

  /** How many items from the head of `queue` the next call carries (at least one). */
  private batchLength(queue: Pending<T, R>[]): number {
    const { maxItems, maxBytes } = this.limits;
    return takeWithin(queue, (p) => p.size, maxItems, maxBytes).taken.length;
  }

  /**
   * The wait before the next call for `key` (spacing): until `spacingMs` after
   * the previous call started, or until a call's worth is waiting. None when the
   * key has been idle that long, or a call's worth is waiting already.
   */
  private heldBack(key: K, queue: Pending<T, R>[]): Promise<void> | undefined {
    const spacing = this.limits.spacingMs ?? 0;
    const last = this.lastStart.get(key);
    if (this.hurried.delete(key) || spacing <= 0 || last === undefined) return undefined;
    const wait = last + spacing - Date.now();
    if (wait <= 0) return undefined;
    if (queue.length >= this.limits.maxItems || (this.keyBytes.get(key) ?? 0) >= this.limits.maxBytes)
      return undefined;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(key);
        resolve();
      };
      const timer = setTimeout(done, wait);
      this.wakers.set(key, done);
    });
  }

  /** A call for `key` starts now; keys whose last call is older than the spacing are forgotten now and then. */
  private started(key: K): void {
    const spacing = this.limits.spacingMs ?? 0;
    if (spacing <= 0) return;
    const now = Date.now();
    this.lastStart.set(key, now);
    if (this.lastStart.size < this.sweepAt) return;
    for (const [k, at] of this.lastStart) if (now - at >= spacing) this.lastStart.delete(k);
    this.sweepAt = Math.max(SWEEP_AT, 2 * this.lastStart.size);
  }

  private async flush(key: K): Promise<void> {
    this.busy.add(key);
    try {
      for (;;) {
        const queue = this.queues.get(key);
        if (queue === undefined || queue.length === 0) break;
        const held = this.heldBack(key, queue);
        if (held !== undefined) await held;
        const batch = queue.splice(0, this.batchLength(queue));
        this.started(key);
        try {
          const results = await this.send(
            key,
            batch.map((p) => p.item),
          );
          batch.forEach((p, i) => {
            p.resolve(results ? results[i] : undefined);
          });
        } catch (err) {
          for (const p of batch) p.reject(err);
        } finally {
          let bytes = 0;
          for (const p of batch) bytes += p.size;
          this.pendingBytes -= bytes;
          this.pendingItems -= batch.length;
          this.keyBytes.set(key, (this.keyBytes.get(key) ?? bytes) - bytes);
        }
      }
    } finally {
      this.busy.delete(key);
      this.hurried.delete(key);
      this.queues.delete(key);
      this.keyBytes.delete(key);
    }
  }
}
