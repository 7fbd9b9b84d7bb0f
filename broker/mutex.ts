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
