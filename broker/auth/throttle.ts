/**
 * Rate limits on failed authentications, per client address and per gateway.
 * Checking a password costs 100,000 PBKDF2 iterations on the gateway's one thread
 * (the same for unknown users, so that timing tells nothing): without a limit,
 * anyone could keep a gateway busy guessing. An address, or the gateway as a
 * whole, that has failed too often lately is refused before any check is made
 * (CONNACK 0x9F / 3), until its budget refills. Successes cost nothing here.
 *
 * In memory: an evicted gateway forgets, which errs on the side of the clients.
 */
import { TokenBucket } from "../rate-limit.ts";

/** Addresses tracked at once; the longest unseen is forgotten past it (bounded memory). */
export const MAX_TRACKED_ADDRESSES = 10_000;

export interface ThrottleSettings {
  /** Failures one address may have per minute (a burst of as many, refilled evenly). */
  perAddress: number;
  /** Failures the whole gateway may have per minute. */
  perGateway: number;
}

export class AuthThrottle {
  private readonly settings: ThrottleSettings;
  private readonly gateway: TokenBucket;
  /** Address → bucket, least recently failed first. */
  private readonly addresses = new Map<string, TokenBucket>();

  constructor(settings: ThrottleSettings, now = Date.now()) {
    this.settings = settings;
    this.gateway = new TokenBucket(settings.perGateway / 60, settings.perGateway, now);
  }

  /** Whether an attempt from `address` may be checked at all now. */
  allows(address: string | undefined, now = Date.now()): boolean {
    if (!this.gateway.has(now)) return false;
    const bucket = address === undefined ? undefined : this.addresses.get(address);
    return bucket === undefined || bucket.has(now);
  }

  /** Counts a failed attempt against the address and the gateway. */
  failed(address: string | undefined, now = Date.now()): void {
    this.gateway.take(now);
    if (address === undefined) return;
    let bucket = this.addresses.get(address);
    if (bucket === undefined) {
      if (this.addresses.size >= MAX_TRACKED_ADDRESSES) {
        const oldest = this.addresses.keys().next().value as string;
        this.addresses.delete(oldest);
      }
      bucket = new TokenBucket(this.settings.perAddress / 60, this.settings.perAddress, now);
    } else {
      this.addresses.delete(address);
    }
    this.addresses.set(address, bucket);
    bucket.take(now);
  }

  /** Addresses tracked now (for tests of the bound). */
  get tracked(): number {
    return this.addresses.size;
  }
}
