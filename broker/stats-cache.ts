/**
 * One aggregate of the broker's statistics, shared: whoever asks gets the last
 * collection if it is young enough, and concurrent askers share one collection.
 * So statistics cost one round of calls (every gateway and shard: G + S) per
 * interval, however many gateways publish $SYS and however often the API is
 * polled — not G × (G + S).
 *
 * A collection's age counts from when it started (what it read may be that old),
 * so an asker that allows 0 ms gets one started after it asked: it sees whatever
 * happened before it asked (the tests' and the benchmark's before/after counts).
 */
export class StatsCache<T> {
  private last: { startedAt: number; value: T } | undefined;
  private running: { startedAt: number; value: Promise<T> } | undefined;
  private readonly collect: () => Promise<T>;

  constructor(collect: () => Promise<T>) {
    this.collect = collect;
  }

  /** The aggregate of a collection started at most `maxAgeMs` before `now` (0: one started now). */
  get(maxAgeMs: number, now = Date.now()): Promise<T> {
    if (this.last !== undefined && now - this.last.startedAt <= maxAgeMs)
      return Promise.resolve(this.last.value);
    if (this.running !== undefined && now - this.running.startedAt <= maxAgeMs) return this.running.value;
    const run = {
      startedAt: now,
      value: this.collect()
        .then((value) => {
          if (this.last === undefined || this.last.startedAt <= now) this.last = { startedAt: now, value };
          return value;
        })
        .finally(() => {
          if (this.running === run) this.running = undefined;
        }),
    };
    this.running = run;
    return run.value;
  }
}
