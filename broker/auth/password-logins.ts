/**
 * Password logins against both credential sources: the MQTT_PASSWORDS secret
 * (a few dozen users, deployed with the code) and the user store (any number,
 * changed through the HTTP API). A name in the secret is the secret's: the store
 * is not consulted for its hash (the API refuses to set such a name, and a row
 * stored before the name was added to the secret is ignored).
 *
 * A full check is 100,000 PBKDF2 iterations, about 35 ms of the gateway's one
 * thread. With a pepper (AUTH_PEPPER), a login that succeeded once is
 * remembered by its verifier (login-verifier.ts), and the next costs one HMAC:
 * clients reconnecting after a deploy do not pay PBKDF2 again. Every other
 * outcome costs a full check, the same for a wrong password, an unknown user
 * and a user without a verifier, so timing tells nothing about who exists.
 */
import { log } from "../log.ts";
import type { LoginVerifiers } from "./login-verifier.ts";
import { DECOY, matches, type PasswordFile, type PasswordHash, parsePasswordHash } from "./passwords.ts";
import { userNameProblem } from "./user-names.ts";

/** What the user store knows of a name. */
export interface UserRecord {
  /** The store's hash for the user (`pbkdf2-sha256:…`); null: no such user in the store. */
  hash: string | null;
  /** The verifier kept after the name's last successful full check; null: none. */
  verifier: Uint8Array | null;
}

/** The user store as logins see it (UserShard, one object per hash bucket of names). */
export interface UserLookup {
  lookup(name: string): Promise<UserRecord>;
  /** Keeps the verifier of a login that a full check accepted (made with the hash checked). */
  remember(name: string, verifier: Uint8Array): Promise<void>;
}

/**
 * What a login cost, counted by the gateway: a full PBKDF2 check (decoys for
 * unknown names included), or a verifier's one HMAC.
 */
export type LoginCounter = "logins_full_check" | "logins_verifier";

/** "unknown": neither the secret nor the store has the name. */
export type PasswordVerdict = "accepted" | "refused" | "unknown";

const NOTHING: UserRecord = { hash: null, verifier: null };

export class PasswordLogins {
  private readonly file: PasswordFile;
  private readonly store: UserLookup | undefined;
  private readonly verifiers: LoginVerifiers | undefined;
  private readonly count: (counter: LoginCounter) => void;

  constructor(
    file: PasswordFile,
    store?: UserLookup,
    verifiers?: LoginVerifiers,
    count: (counter: LoginCounter) => void = () => {},
  ) {
    this.file = file;
    this.store = store;
    this.verifiers = verifiers;
    this.count = count;
  }

  /** Users in the secret: with any, every credential given must check out. */
  get fileUsers(): number {
    return this.file.size;
  }

  /**
   * Whether `password` is the user's. `decoy`: an unknown name costs a full check
   * too (when its refusal must look like a wrong password's).
   */
  async check(name: string, password: Uint8Array, decoy: boolean): Promise<PasswordVerdict> {
    const fromFile = this.file.hashOf(name);
    const record = await this.recordOf(name, fromFile !== undefined);
    const hash = fromFile ?? record.hash;
    const parsed = hash === null ? undefined : parsePasswordHash(hash);
    if (hash === null || parsed === undefined) {
      if (decoy) await this.fullCheck(password, DECOY);
      return "unknown";
    }
    // PBKDF2 pads its HMAC key with zero bytes, so "pw" and "pw\0" derive the same
    // hash. No stored password ends with one (hashPassword refuses U+0000): such a
    // password is wrong whatever the hash says, refused after as much work.
    if (password.at(-1) === 0) {
      await this.fullCheck(password, DECOY);
      return "refused";
    }
    if (this.verifiers !== undefined && record.verifier !== null) {
      const made = await this.verifiers.match(record.verifier, name, hash, password);
      if (made !== null) this.count("logins_verifier");
      if (made === "current") return "accepted";
      // Made before the pepper was rotated: right, and made again with the new one.
      if (made === "previous") {
        await this.remember(name, hash, password);
        return "accepted";
      }
    }
    if (!(await this.fullCheck(password, parsed))) return "refused";
    await this.remember(name, hash, password);
    return "accepted";
  }

  private fullCheck(password: Uint8Array, stored: PasswordHash): Promise<boolean> {
    this.count("logins_full_check");
    return matches(password, stored);
  }

  /** Whether the secret or the store has the name. */
  async known(name: string): Promise<boolean> {
    if (this.file.has(name)) return true;
    return (await this.recordOf(name, false)).hash !== null;
  }

  /**
   * The store's record of a name. A user of the secret still logs in, with a full
   * check, while the store cannot be reached; anyone else's login fails with it.
   */
  private async recordOf(name: string, inFile: boolean): Promise<UserRecord> {
    // A name the store cannot hold (a CONNECT's user name may have 65,535 bytes) is not asked about.
    if (this.store === undefined || (!inFile && userNameProblem(name) !== null)) return NOTHING;
    try {
      return await this.store.lookup(name);
    } catch (err) {
      if (!inFile) throw err;
      log("warn", "user_store_unreachable", { error: String(err) });
      return NOTHING;
    }
  }

  private async remember(name: string, hash: string, password: Uint8Array): Promise<void> {
    if (this.verifiers === undefined || this.store === undefined) return;
    try {
      await this.store.remember(name, await this.verifiers.make(name, hash, password));
    } catch (err) {
      // Only a cache: the next login checks in full again.
      log("warn", "verifier_not_kept", { error: String(err) });
    }
  }
}
