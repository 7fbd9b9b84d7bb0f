/**
 * The peppered verifier of a login (README, Security: "Logins after a deploy"):
 * after a full PBKDF2 check succeeds, HMAC-SHA256(pepper, name ‖ hash ‖ password)
 * is kept beside the user, so that the same login later costs one HMAC instead
 * of 100,000 PBKDF2 iterations on the gateway's thread.
 *
 * The pepper (AUTH_PEPPER) is a secret and never stored: a copy of the storage
 * alone gives verifiers that cannot be tested against a guessed password. The
 * stored hash is part of the input, so a changed password (a new salt and hash)
 * makes the old verifier worthless even before it is deleted, and a verifier
 * made for one user's hash is nobody else's. Fields are length-prefixed, so no
 * two (name, hash, password) triples give the same input.
 */
import { timingSafeEqual } from "./compare.ts";

/** Bytes a pepper has at least: fewer could be searched from one verifier of a known password. */
export const MIN_PEPPER_BYTES = 32;
const DOMAIN = new TextEncoder().encode("nimbus login verifier 1\0");

/** Which pepper made a verifier: the current one, or the one before a rotation. */
export type PepperMatch = "current" | "previous" | null;

export class LoginVerifiers {
  private readonly current: Promise<CryptoKey>;
  private readonly previous: Promise<CryptoKey> | undefined;

  /** `previous` (AUTH_PEPPER_PREVIOUS) still accepts verifiers made before a rotation. */
  constructor(pepper: string, previous?: string) {
    this.current = hmacKey(pepper);
    this.previous = previous === undefined || previous === "" ? undefined : hmacKey(previous);
  }

  /** The verifier of a login that a full check has just accepted. */
  async make(name: string, hash: string, password: Uint8Array): Promise<Uint8Array> {
    return sign(await this.current, input(name, hash, password));
  }

  /** Which pepper, if any, made `stored` for this login. */
  async match(stored: Uint8Array, name: string, hash: string, password: Uint8Array): Promise<PepperMatch> {
    const data = input(name, hash, password);
    if (timingSafeEqual(stored, await sign(await this.current, data))) return "current";
    if (this.previous !== undefined && timingSafeEqual(stored, await sign(await this.previous, data)))
      return "previous";
    return null;
  }
}

function hmacKey(pepper: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(pepper),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

async function sign(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
}

/** DOMAIN ‖ len(name) ‖ name ‖ len(hash) ‖ hash ‖ password, lengths as 32-bit big-endian. */
function input(name: string, hash: string, password: Uint8Array): Uint8Array {
  const enc = new TextEncoder();
  const parts = [DOMAIN, ...prefixed(enc.encode(name)), ...prefixed(enc.encode(hash)), password];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function prefixed(bytes: Uint8Array): [Uint8Array, Uint8Array] {
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, bytes.length);
  return [length, bytes];
}
