/**
 * Rate limits on failed authentications (README, Failed logins). Checking a
 * password costs 100,000 PBKDF2 iterations on the gateway's one thread (the
 * same for unknown users, so that timing tells nothing): without a limit,
 * anyone could keep a gateway busy guessing. Three budgets, each a token bucket
 * of failures a minute:
 *
 * - a *source*: an IPv4 address, or an IPv6 /64 (one host may use any address
 *   of its /64 at no cost, so a /64 is what one client is);
 * - its *network*: the IPv4 /24 or IPv6 /48 around it, so that an attacker
 *   holding a block (a /48 holds 65,536 /64s) gets one larger budget, not one
 *   per address;
 * - the *gateway*: the CPU bound. It is drawn on only by failed password checks
 *   (a token's or a challenge's check costs a signature, not PBKDF2), and it
 *   holds back only sources that have failed lately: a source with no failure
 *   on record is checked whatever others did, so addresses sending bad
 *   credentials cannot lock out everyone else with valid ones.
 *
 * A source or network past its budget, or a failing source while the gateway's
 * is spent, is refused before any check is made (CONNACK 0x9F / 3), until the
 * budget refills. Successes cost nothing. In memory: an evicted gateway
 * forgets, which errs on the side of the clients.
 */
import { TokenBucket } from "../rate-limit.ts";

/** Sources and networks tracked at once, each; the least recently failed is forgotten past it. */
export const MAX_TRACKED_ADDRESSES = 10_000;

export interface ThrottleSettings {
  /** Failures one source (IPv4 address, IPv6 /64) may have per minute (a burst of as many, refilled evenly). */
  perAddress: number;
  /** Failures one network (IPv4 /24, IPv6 /48) may have per minute. */
  perNetwork: number;
  /** Failed password checks the whole gateway may make per minute, for sources that failed lately. */
  perGateway: number;
}

/** What a failure cost: a password check (PBKDF2, drawn on the gateway's budget) or a cheap one. */
export type FailureCost = "password" | "cheap";

/** The source and network keys of a client address (CF-Connecting-IP). */
export function addressKeys(address: string): { source: string; network: string } {
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(address);
  if (v4 !== null) {
    const [, a, b, c, d] = v4;
    return { source: `${a}.${b}.${c}.${d}`, network: `${a}.${b}.${c}.0/24` };
  }
  const groups = ipv6Groups(address);
  if (groups === undefined) return { source: address, network: address };
  return {
    source: `${groups.slice(0, 4).join(":")}::/64`,
    network: `${groups.slice(0, 3).join(":")}::/48`,
  };
}

/** The eight 16-bit groups of an IPv6 address, in lowercase hex without leading zeros; undefined if it is none. */
function ipv6Groups(address: string): string[] | undefined {
  const bare = address.replace(/^\[|\]$/g, "").split("%")[0] as string;
  if (!/^[0-9a-f:]+$/i.test(bare) || !bare.includes(":")) return undefined;
  const halves = bare.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : (halves[0] as string).split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? (halves[1] as string).split(":") : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return undefined;
  const groups = [...head, ...Array.from({ length: missing }, () => "0"), ...tail];
  if (groups.some((g) => g.length === 0 || g.length > 4)) return undefined;
  return groups.map((g) => Number.parseInt(g, 16).toString(16));
}

/** Buckets by key, least recently failed first, at most MAX_TRACKED_ADDRESSES of them. */
class Buckets {
  private readonly perMinute: number;
  private readonly map = new Map<string, TokenBucket>();

  constructor(perMinute: number) {
    this.perMinute = perMinute;
  }

  get size(): number {
    return this.map.size;
  }

  /** Whether `key` has budget left (a key never seen has all of it). */
  has(key: string, now: number): boolean {
    return this.map.get(key)?.has(now) ?? true;
  }

  /** Whether `key` failed lately: its bucket is not full again. */
  failedLately(key: string, now: number): boolean {
    const bucket = this.map.get(key);
    return bucket !== undefined && !bucket.full(now);
  }

  take(key: string, now: number): void {
    let bucket = this.map.get(key);
    if (bucket === undefined) {
      if (this.map.size >= MAX_TRACKED_ADDRESSES) this.map.delete(this.map.keys().next().value as string);
      bucket = new TokenBucket(this.perMinute / 60, this.perMinute, now);
    } else {
      this.map.delete(key);
    }
    this.map.set(key, bucket);
    bucket.take(now);
  }
}

export class AuthThrottle {
  private readonly gateway: TokenBucket;
  private readonly sources: Buckets;
  private readonly networks: Buckets;

  constructor(settings: ThrottleSettings, now = Date.now()) {
    this.gateway = new TokenBucket(settings.perGateway / 60, settings.perGateway, now);
    this.sources = new Buckets(settings.perAddress);
    this.networks = new Buckets(settings.perNetwork);
  }

  /** Whether an attempt from `address` may be checked at all now. */
  allows(address: string | undefined, now = Date.now()): boolean {
    // No address (not behind Cloudflare): the gateway's budget is all there is.
    if (address === undefined || address === "") return this.gateway.has(now);
    const { source, network } = addressKeys(address);
    if (!this.sources.has(source, now) || !this.networks.has(network, now)) return false;
    return !this.sources.failedLately(source, now) || this.gateway.has(now);
  }

  /** Counts a failed attempt against its source and network, and a failed password check against the gateway. */
  failed(address: string | undefined, cost: FailureCost = "password", now = Date.now()): void {
    if (cost === "password") this.gateway.take(now);
    if (address === undefined || address === "") return;
    const { source, network } = addressKeys(address);
    this.sources.take(source, now);
    this.networks.take(network, now);
  }

  /** Sources and networks tracked now (for tests of the bound). */
  get tracked(): { sources: number; networks: number } {
    return { sources: this.sources.size, networks: this.networks.size };
  }
}
