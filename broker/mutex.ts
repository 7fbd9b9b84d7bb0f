/**
 * Serialises async sections inside one Durable Object. The runtime lets other
 * calls in while an object awaits another object; where a sequence of steps must
 * not interleave (a session handover), it runs under this lock.
 */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(section: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(section);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * A Mutex per key: sections for one key run one at a time, sections for different
 * keys interleave freely. A key's entry lives only while sections for it are pending.
 */
export class KeyedMutex<K> {
  private readonly tails = new Map<K, Promise<void>>();

  run<T>(key: K, section: () => Promise<T> | T): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(section);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with a section running or waiting (bounded by the calls in progress). */
  get size(): number {
    return this.tails.size;
  }
}
