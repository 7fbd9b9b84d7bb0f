/**
 * A token bucket: `rate` tokens a second up to `burst`. One per connection for its
 * PUBLISH packets; the authentication throttle keeps some too. In memory only:
 * after an eviction a bucket starts full, which errs on the side of the client.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly rate: number;
  private readonly burst: number;

  constructor(rate: number, burst: number, now = Date.now()) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.last = now;
  }

  take(now = Date.now()): boolean {
    return this.spend(1, now);
  }

  /** Takes `n` tokens if there are that many (a whole burst's worth at most, when full). */
  spend(n: number, now = Date.now()): boolean {
    this.has(now);
    if (this.tokens < Math.min(n, this.burst)) return false;
    this.tokens -= n;
    return true;
  }

  /**
   * Takes a token if there is one and returns 0; else how long (ms) until there
   * is, taking nothing: a caller that shapes waits that long and asks again.
   */
  waitFor(now = Date.now()): number {
    if (this.take(now)) return 0;
    return Math.max(1, this.nextAt(now) - now);
  }

  /** When the next whole token is there (now, if one is). */
  nextAt(now = Date.now()): number {
    this.has(now);
    return this.tokens >= 1 ? now : now + Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }

  /** Whether the bucket is full again (nothing taken from it lately). */
  full(now = Date.now()): boolean {
    this.has(now);
    return this.tokens >= this.burst;
  }

  /** Whether a token is there now, without taking it. */
  has(now = Date.now()): boolean {
    // A time before the last one seen (a caller holding an earlier clock reading) adds nothing.
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
    }
    return this.tokens >= 1;
  }
}
