/**
 * Batches calls per key with at most one call in flight per key: items added
 * while a call is under way go out together in the next one. Under load this
 * turns many small RPCs into few large ones; and since calls for one key never
 * overlap, items reach the other side in the order they were added (DESIGN.md
 * invariant 3).
 */
interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class KeyedBatcher<K, T> {
  private readonly queues = new Map<K, Pending<T>[]>();
  private readonly busy = new Set<K>();
  private readonly send: (key: K, items: T[]) => Promise<void>;
  private readonly maxBatch: number;

  constructor(send: (key: K, items: T[]) => Promise<void>, maxBatch = 500) {
    this.send = send;
    this.maxBatch = maxBatch;
  }

  /** Resolves once the call carrying `item` has completed. */
  add(key: K, item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let queue = this.queues.get(key);
      if (queue === undefined) {
        queue = [];
        this.queues.set(key, queue);
      }
      queue.push({ item, resolve, reject });
      if (!this.busy.has(key)) void this.flush(key);
    });
  }

  private async flush(key: K): Promise<void> {
    this.busy.add(key);
    try {
      for (;;) {
        const queue = this.queues.get(key);
        if (queue === undefined || queue.length === 0) break;
        const batch = queue.splice(0, this.maxBatch);
        try {
          await this.send(
            key,
            batch.map((p) => p.item),
          );
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.busy.delete(key);
      this.queues.delete(key);
    }
  }
}
