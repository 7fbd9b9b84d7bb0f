/**
 * UserShard: the user store (DESIGN.md, "Users"), one object per bucket of user
 * names (USER_SHARDS, by hash of the name; fixed, so a name's bucket never
 * changes). Each holds its users' PBKDF2 hashes, and the verifier of each name's
 * last successful full login check (login-verifier.ts), which makes the next
 * login one HMAC.
 *
 * A login is one call here (`lookup`), a primary-key read: its cost does not
 * depend on how many users there are. Changes come from the HTTP API through the
 * Worker, which has already checked names and hashes; they are checked again
 * here, since what is stored is read by every login.
 */
import { DurableObject } from "cloudflare:workers";

import { LoginVerifiers } from "../broker/auth/login-verifier.ts";

import {
  type LoginCounter,
  PasswordLogins,
  type UserLookup,
  type UserRecord,
} from "../broker/auth/password-logins.ts";

import { PasswordFile, passwordHashProblem } from "../broker/auth/passwords.ts";

import { MAX_USER_NAME_BYTES, userNameProblem } from "../broker/auth/user-names.ts";

import { KeyedBatcher } from "../broker/batcher.ts";

import { type Migration, migrate } from "../broker/migrations.ts";

import { fnv1a } from "../broker/routing.ts";

import type { Env } from "../worker/env.ts";

import type { NewUser, UserInfo, UserPage, UserShardRpc } from "./contracts.ts";

/**
 * Buckets of user names. 1,000,000 users are about 15,600 rows (3 MB) a bucket;
 * a million clients logging in within a minute after a deploy are about 260
 * lookups a second a bucket, a quarter of what one object serves.
 */
export const USER_SHARDS = 64;
/** Users one call sets or lists at most (a page of the API, about 400 KB). */
export const USERS_PER_CALL = 1000;
/** Names one login lookup call carries at most (two primary-key reads each). */
const LOOKUPS_PER_CALL = 100;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verifiers (name TEXT PRIMARY KEY, verifier BLOB NOT NULL) WITHOUT ROWID;
`;
export const USER_SHARD_MIGRATIONS: readonly Migration[] = [
  { to: 1, about: "baseline: users and their login verifiers", sql: SCHEMA },
];

export function userShardOf(name: string): number {
  return fnv1a(name) % USER_SHARDS;
}

export function userShardStub(env: Pick<Env, "USERS">, shard: number): DurableObjectStub<UserShardRpc> {
  return env.USERS.get(env.USERS.idFromName(`users-${shard}`));
}

/**
 * Logins' view of the store: each name's calls go to its bucket. Lookups made
 * while one to the same bucket is under way go together in the next call, so a
 * reconnect storm of N users costs about one call per bucket per round trip,
 * not N calls.
 */
export function userLookup(env: Env): UserLookup {
  const lookups = new KeyedBatcher<number, string, UserRecord>(
    (shard, names) => userShardStub(env, shard).lookup(names),
    {
      maxItems: LOOKUPS_PER_CALL,
      maxBytes: LOOKUPS_PER_CALL * MAX_USER_NAME_BYTES,
      sizeOf: (name) => name.length,
    },
  );
  return {
    lookup: async (name) => {
      const record = await lookups.add(userShardOf(name), name);
      if (record === undefined) throw new Error("user store answered no record");
      return record;
    },
    remember: (name, verifier) => userShardStub(env, userShardOf(name)).remember(name, verifier),
  };
}

/** Password logins as a gateway checks them: MQTT_PASSWORDS, then the store; verifiers with AUTH_PEPPER. */
export function passwordLogins(env: Env, count: (counter: LoginCounter) => void): PasswordLogins {
  const verifiers = env.AUTH_PEPPER
    ? new LoginVerifiers(env.AUTH_PEPPER, env.AUTH_PEPPER_PREVIOUS)
    : undefined;
  return new PasswordLogins(new PasswordFile(env.MQTT_PASSWORDS ?? ""), userLookup(env), verifiers, count);
}

export class UserShard extends DurableObject<Env> implements UserShardRpc {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage.sql, "UserShard", USER_SHARD_MIGRATIONS);
  }

  private get sql(): SqlStorage {
    return this.ctx.storage.sql;
  }

  /** Each name's hash and verifier, in the order asked. */
  lookup(names: string[]): UserRecord[] {
    if (names.length > LOOKUPS_PER_CALL) throw new RangeError(`${names.length} names in one call`);
    return names.map((name) => {
      const user = this.sql
        .exec<{ hash: string }>("SELECT hash FROM users WHERE name = ?", name)
        .toArray()[0];
      const kept = this.sql
        .exec<{ verifier: ArrayBuffer }>("SELECT verifier FROM verifiers WHERE name = ?", name)
        .toArray()[0];
      return {
        hash: user?.hash ?? null,
        verifier: kept === undefined ? null : new Uint8Array(kept.verifier),
      };
    });
  }

  /**
   * Keeps a login's verifier, written only after a full check succeeded. Not
   * compared with the stored hash: the verifier is made with it, so one made for
   * a hash that has changed since matches no login.
   */
  remember(name: string, verifier: Uint8Array): void {
    this.sql.exec("INSERT OR REPLACE INTO verifiers (name, verifier) VALUES (?, ?)", name, verifier);
  }

  /** Adds or replaces users (their verifiers go); how many were new. */
  put(users: NewUser[], now: number): number {
    if (users.length > USERS_PER_CALL) throw new RangeError(`${users.length} users in one call`);
    for (const u of users) {
      const problem = userNameProblem(u.name) ?? passwordHashProblem(u.hash);
      if (problem !== null) throw new RangeError(problem);
    }
    let created = 0;
    this.ctx.storage.transactionSync(() => {
      for (const u of users) {
        const before = this.sql.exec("SELECT 1 FROM users WHERE name = ?", u.name).toArray().length;
        this.sql.exec(
          `INSERT INTO users (name, hash, created, updated) VALUES (?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, updated = excluded.updated`,
          u.name,
          u.hash,
          now,
          now,
        );
        this.sql.exec("DELETE FROM verifiers WHERE name = ?", u.name);
        if (before === 0) created++;
      }
    });
    return created;
  }

  /** Removes a user and its verifier; whether there was one. */
  remove(name: string): boolean {
    this.sql.exec("DELETE FROM verifiers WHERE name = ?", name);
    return this.sql.exec("DELETE FROM users WHERE name = ? RETURNING name", name).toArray().length > 0;
  }

  get(name: string): UserInfo | null {
    return (
      this.sql.exec<UserInfo>("SELECT name, created, updated FROM users WHERE name = ?", name).toArray()[0] ??
      null
    );
  }

  /** Users in name order after `after` (null: from the first), at most `limit`. */
  page(after: string | null, limit: number): UserPage {
    if (!Number.isInteger(limit) || limit < 1 || limit > USERS_PER_CALL)
      throw new RangeError(`limit ${limit}`);
    const rows = this.sql
      .exec<UserInfo>(
        "SELECT name, created, updated FROM users WHERE name > ? ORDER BY name LIMIT ?",
        after ?? "",
        limit + 1,
      )
      .toArray();
    return { users: rows.slice(0, limit), more: rows.length > limit };
  }
}
