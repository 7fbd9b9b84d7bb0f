/**
 * User names and passwords, checked against salted PBKDF2-SHA256 hashes kept in a
 * secret (MQTT_PASSWORDS). One entry per user, entries separated by white space:
 *
 *   alice:pbkdf2-sha256:100000:<salt, base64>:<hash, base64>
 *
 * `npm run passwd -- <user> <password>` writes an entry.
 */
import { fromBase64, toBase64 } from "../json.ts";
import { timingSafeEqual } from "./compare.ts";

export const PBKDF2_ITERATIONS = 100_000; // the most the Workers runtime allows
const HASH_BYTES = 32;

interface Entry {
  iterations: number;
  salt: Uint8Array;
  hash: Uint8Array;
}

export class PasswordFile {
  private readonly entries = new Map<string, Entry>();
  /** A salt and hash to check against for unknown users, so timing tells nothing. */
  private readonly decoy: Entry = {
    iterations: PBKDF2_ITERATIONS,
    salt: new Uint8Array(16),
    hash: new Uint8Array(HASH_BYTES),
  };

  constructor(text: string) {
    for (const line of text.split(/\s+/)) {
      if (line === "") continue;
      const [user, scheme, iterations, salt, hash] = line.split(":");
      if (user === undefined || scheme !== "pbkdf2-sha256" || !iterations || !salt || !hash) continue;
      this.entries.set(user, {
        iterations: Number(iterations),
        salt: fromBase64(salt),
        hash: fromBase64(hash),
      });
    }
  }

  get size(): number {
    return this.entries.size;
  }

  has(username: string): boolean {
    return this.entries.has(username);
  }

  /** Whether `password` is the user's; takes the same time for unknown users. */
  async verify(username: string, password: Uint8Array): Promise<boolean> {
    const entry = this.entries.get(username);
    const e = entry ?? this.decoy;
    const derived = await derive(password, e.salt, e.iterations);
    return timingSafeEqual(derived, e.hash) && entry !== undefined;
  }
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

/** A password file entry for `username`, with a fresh random salt. */
export async function passwordEntry(username: string, password: string): Promise<string> {
  if (username.includes(":") || /\s/.test(username))
    throw new Error("a user name may not contain ':' or white space");
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const hash = await derive(new TextEncoder().encode(password), salt, PBKDF2_ITERATIONS);
  return `${username}:pbkdf2-sha256:${PBKDF2_ITERATIONS}:${toBase64(salt)}:${toBase64(hash)}`;
}
