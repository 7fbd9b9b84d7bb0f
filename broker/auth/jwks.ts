/**
 * A JWKS fetched from JWKS_URL, as `jose`'s createRemoteJWKSet keeps one: cached
 * for JWKS_CACHE_MS, fetched again at once when a token names a key (`kid`) the
 * cached set lacks (an issuer rotated its keys), but not more than once per
 * JWKS_COOLDOWN_MS, so that a flood of tokens with made-up kids costs one fetch
 * per cooldown. One fetch at a time, with a timeout and a size bound. Unlike
 * jose, a failed fetch keeps the keys known so far (an issuer that is down does
 * not lock every token holder out once the cache ages); see README, Authentication.
 */

import { readBounded } from "../bounded-read.ts";

/** How long fetched keys are used before they are fetched again. */
export const JWKS_CACHE_MS = 10 * 60 * 1000;
/** After any fetch (failed or not), how long until the next one: for an unknown kid, or a retry. */
export const JWKS_COOLDOWN_MS = 30 * 1000;
/** A JWKS fetch that takes longer fails. */
const JWKS_TIMEOUT_MS = 5_000;
/** A JWKS larger than this is refused (a few keys take a few KiB). */
export const JWKS_MAX_BYTES = 64 * 1024;

export class RemoteJwks {
  private readonly url: string;
  private keys: JsonWebKey[] = [];
  /** Until when `keys` are fresh (epoch ms); 0 before the first fetch. */
  private freshUntil = 0;
  /** When the last fetch began (epoch ms): no other starts within JWKS_COOLDOWN_MS of it. */
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<JsonWebKey[]> | undefined;
  /** Fetches made (for tests of the cooldown). */
  fetches = 0;

  constructor(url: string) {
    this.url = url;
  }

  /** The keys, fetched when there are none or they have aged (and the cooldown allows). */
  current(): Promise<JsonWebKey[]> {
    if (Date.now() < this.freshUntil) return Promise.resolve(this.keys);
    return this.fetchUnlessCooling();
  }

  /** A token named a key the keys lack: fetch again now, unless a fetch began within the cooldown. */
  reload(): Promise<JsonWebKey[]> {
    return this.fetchUnlessCooling();
  }

  private fetchUnlessCooling(): Promise<JsonWebKey[]> {
    if (this.inFlight !== undefined) return this.inFlight;
    if (Date.now() < this.lastAttempt + JWKS_COOLDOWN_MS) return Promise.resolve(this.keys);
    this.lastAttempt = Date.now();
    this.fetches++;
    this.inFlight = this.fetchJwks().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** Fetches with a timeout and a size bound; a failure keeps the keys known so far. */
  private async fetchJwks(): Promise<JsonWebKey[]> {
    try {
      const res = await fetch(this.url, {
        signal: AbortSignal.timeout(JWKS_TIMEOUT_MS),
        headers: { accept: "application/json" },
        // A JWKS answered from elsewhere is not the issuer's.
        redirect: "error",
      });
      const text = res.ok ? await boundedText(res, JWKS_MAX_BYTES) : undefined;
      const keys = text === undefined ? undefined : parseJwks(text);
      if (keys !== undefined) {
        this.keys = keys;
        this.freshUntil = Date.now() + JWKS_CACHE_MS;
      }
    } catch {
      // unreachable, too slow or too large: as a failed answer
    }
    return this.keys;
  }
}

export function parseJwks(text: string): JsonWebKey[] | undefined {
  try {
    const keys = (JSON.parse(text) as { keys?: unknown }).keys;
    if (!Array.isArray(keys)) return undefined;
    return keys.filter((k): k is JsonWebKey => typeof k === "object" && k !== null && !Array.isArray(k));
  } catch {
    return undefined;
  }
}

/** The body as text, or undefined if it is longer than `max` bytes. */
async function boundedText(res: Response, max: number): Promise<string | undefined> {
  const bytes = await readBounded(res.body, max);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}
