/**
 * User names and passwords, checked against salted PBKDF2-SHA256 hashes. A hash is
 * written `pbkdf2-sha256:100000:<salt, base64>:<hash, base64>`, the same in the
 * MQTT_PASSWORDS secret, where each entry puts the user name before it,
 *
 *   alice:pbkdf2-sha256:100000:<salt, base64>:<hash, base64>
 *
 * (entries separated by white space), and in the user store (user-shard.ts).
 * `npm run passwd -- <user> <password>` writes an entry.
 */
import { fromBase64, toBase64 } from "../json.ts";
import { timingSafeEqual } from "./compare.ts";

export const PBKDF2_ITERATIONS = 100_000; // the most the Workers runtime allows
const HASH_BYTES = 32;
const SALT_BYTES = 16;
/** A longer salt adds nothing; bounded so that a stored hash stays small. */
const MAX_SALT_BYTES = 64;

export interface PasswordHash {
  iterations: number;
  salt: Uint8Array;
  hash: Uint8Array;
}

/** A salt and hash to check against for unknown users, so that timing tells nothing. */
export const DECOY: PasswordHash = {
  iterations: PBKDF2_ITERATIONS,
  salt: new Uint8Array(SALT_BYTES),
  hash: new Uint8Array(HASH_BYTES),
};

/** `pbkdf2-sha256:<iterations>:<salt>:<hash>` read leniently (MQTT_PASSWORDS as earlier releases took it). */
export function parsePasswordHash(text: string): PasswordHash | undefined {
  const [scheme, iterations, salt, hash, extra] = text.split(":");
  if (scheme !== "pbkdf2-sha256" || !iterations || !salt || !hash || extra !== undefined) return undefined;
  const n = Number(iterations);
  if (!Number.isInteger(n) || n < 1) return undefined;
  try {
    return { iterations: n, salt: fromBase64(salt), hash: fromBase64(hash) };
  } catch {
    return undefined; // not base64
  }
}

/**
 * What is wrong with a hash given to the user store (null: nothing): the current
 * parameters exactly, so that no weaker hash is ever stored (and no stronger one
 * that the runtime could not compute).
 */
export function passwordHashProblem(text: string): string | null {
  const parsed = parsePasswordHash(text);
  if (parsed === undefined) return "a hash is pbkdf2-sha256:<iterations>:<salt, base64>:<hash, base64>";
  if (parsed.iterations !== PBKDF2_ITERATIONS)
    return `a hash has ${PBKDF2_ITERATIONS} iterations, not ${parsed.iterations}`;
  if (parsed.salt.length < SALT_BYTES || parsed.salt.length > MAX_SALT_BYTES)
    return `a salt has ${SALT_BYTES} to ${MAX_SALT_BYTES} bytes, not ${parsed.salt.length}`;
  if (parsed.hash.length !== HASH_BYTES) return `a hash has ${HASH_BYTES} bytes, not ${parsed.hash.length}`;
  return null;
}

/** The entries of MQTT_PASSWORDS: user name → hash text. */
export class PasswordFile {
  private readonly entries = new Map<string, string>();

  constructor(text: string) {
    for (const line of text.split(/\s+/)) {
      const colon = line.indexOf(":");
      if (colon < 1) continue;
      const hash = line.slice(colon + 1);
      if (parsePasswordHash(hash) !== undefined) this.entries.set(line.slice(0, colon), hash);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  has(username: string): boolean {
    return this.entries.has(username);
  }

  /** Whether `password` is the user's; takes the same time for unknown users (DECOY). */
  async verify(username: string, password: Uint8Array): Promise<boolean> {
    const text = this.entries.get(username);
    const parsed = text === undefined ? undefined : parsePasswordHash(text);
    return (await matches(password, parsed ?? DECOY)) && parsed !== undefined;
  }

  /** The user's hash text, as the entry gives it. */
  hashOf(username: string): string | undefined {
    return this.entries.get(username);
  }
}

/** Whether `password` derives to `stored`'s hash (a full PBKDF2). */
export async function matches(password: Uint8Array, stored: PasswordHash): Promise<boolean> {
  const derived = await derive(password, stored.salt, stored.iterations);
  return timingSafeEqual(derived, stored.hash);
}

export async function derive(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    key,
    HASH_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/**
 * A hash of `password` with a fresh random salt: `pbkdf2-sha256:100000:<salt>:<hash>`.
 * No U+0000: PBKDF2 pads its key with zero bytes, so "pw\0" would also accept "pw".
 */
export async function hashPassword(password: string): Promise<string> {
  if (password.includes("\0")) throw new Error("a password may not contain U+0000");
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(new TextEncoder().encode(password), salt, PBKDF2_ITERATIONS);
  return `pbkdf2-sha256:${PBKDF2_ITERATIONS}:${toBase64(salt)}:${toBase64(hash)}`;
}

/** A password file entry for `username`, with a fresh random salt. */
export async function passwordEntry(username: string, password: string): Promise<string> {
  if (username.includes(":") || /\s/.test(username))
    throw new Error("a user name may not contain ':' or white space");
  return `${username}:${await hashPassword(password)}`;
}
