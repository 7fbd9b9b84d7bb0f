/**
 * One aggregate of the broker's statistics, shared: whoever asks gets the last
 * collection if it is young enough, and concurrent askers share one collection.
 * So statistics cost one round of calls (every gateway and shard: G + S) per
 * interval, however many gateways publish $SYS and however often the API is
 * polled — not G × (G + S).
 */
export class StatsCache<T> {
  private last: { at: number; value: T } | undefined;
  private running: Promise<T> | undefined;
  private readonly collect: () => Promise<T>;

  constructor(collect: () => Promise<T>) {
    this.collect = collect;
  }

  /** The aggregate, collected at most `maxAgeMs` ago (0: a fresh one, shared with concurrent askers). */
  get(maxAgeMs: number, now = Date.now()): Promise<T> {
    if (this.last !== undefined && now - this.last.at <= maxAgeMs) return Promise.resolve(this.last.value);
    this.running ??= this.collect()
      .then((value) => {
        this.last = { at: Date.now(), value };
        return value;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}
