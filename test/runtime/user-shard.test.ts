/**
 * Inside workerd: the user store's objects. A user's hash is found by name, a
 * login's verifier is kept beside it and goes when the user is replaced or
 * removed, pages walk a bucket in name order, and each call's bounds hold.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { hashPassword } from "../../broker/auth/passwords.ts";
import { USERS_PER_CALL, userShardStub } from "../../durable-objects/user-shard.ts";
import type { Env } from "../../worker/env.ts";

/** A bucket of its own per test: the names need not hash to it for these calls. */
const bucket = (n: number) => userShardStub(env as Env, 1000 + n);

describe("UserShard", () => {
  it("stores a user's hash, keeps a verifier beside it, and drops the verifier when the user changes", async () => {
    const shard = bucket(1);
    const hash = await hashPassword("pw");
    expect(await shard.lookup(["alice"])).toEqual([{ hash: null, verifier: null }]);
    expect(await shard.put([{ name: "alice", hash }], 1000)).toBe(1);
    expect(await shard.lookup(["alice", "bob"])).toEqual([
      { hash, verifier: null },
      { hash: null, verifier: null },
    ]);
    await shard.remember("alice", new Uint8Array(32).fill(7));
    expect((await shard.lookup(["alice"]))[0]?.verifier).toEqual(new Uint8Array(32).fill(7));
    // Replaced: the verifier goes, the creation time stays.
    const other = await hashPassword("new");
    expect(await shard.put([{ name: "alice", hash: other }], 2000)).toBe(0);
    expect(await shard.lookup(["alice"])).toEqual([{ hash: other, verifier: null }]);
    expect(await shard.get("alice")).toEqual({ name: "alice", created: 1000, updated: 2000 });
    await shard.remember("alice", new Uint8Array(32).fill(8));
    expect(await shard.remove("alice")).toBe(true);
    expect(await shard.lookup(["alice"])).toEqual([{ hash: null, verifier: null }]);
    expect(await shard.remove("alice")).toBe(false);
    expect(await shard.get("alice")).toBeNull();
  });

  it("pages through users in name order, at most USERS_PER_CALL a call", async () => {
    const shard = bucket(2);
    const hash = await hashPassword("pw");
    const names = Array.from({ length: USERS_PER_CALL + 5 }, (_, i) => `u${String(i).padStart(5, "0")}`);
    expect(
      await shard.put(
        names.slice(0, USERS_PER_CALL).map((name) => ({ name, hash })),
        1,
      ),
    ).toBe(USERS_PER_CALL);
    expect(
      await shard.put(
        names.slice(USERS_PER_CALL).map((name) => ({ name, hash })),
        1,
      ),
    ).toBe(5);
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page = await shard.page(after, 300);
      expect(page.users.length).toBeLessThanOrEqual(300);
      seen.push(...page.users.map((u) => u.name));
      if (!page.more) break;
      after = seen.at(-1) as string;
    }
    expect(seen).toEqual(names);
    await runInDurableObject(shard, (s) => {
      expect(() => s.page(null, USERS_PER_CALL + 1)).toThrow(/limit/);
      expect(() => s.page(null, 0)).toThrow(/limit/);
    });
  });

  it("refuses more than USERS_PER_CALL users, a bad name or a weak hash, and writes none of the call", async () => {
    const shard = bucket(3);
    const hash = await hashPassword("pw");
    const many = Array.from({ length: USERS_PER_CALL + 1 }, (_, i) => ({ name: `m${i}`, hash }));
    // Called in the object, not through a stub: a call that throws is what is tested.
    await runInDurableObject(shard, (s) => {
      expect(() => s.put(many, 1)).toThrow(/1001 users/);
      expect(() =>
        s.put(
          [
            { name: "ok", hash },
            { name: "a\nb", hash },
          ],
          1,
        ),
      ).toThrow(/control/);
      expect(() => s.put([{ name: "ok", hash: hash.replace("100000", "1000") }], 1)).toThrow(/iterations/);
      expect(() => s.put([{ name: "x".repeat(257), hash }], 1)).toThrow(/257 bytes/);
    });
    expect(await shard.page(null, 10)).toEqual({ users: [], more: false });
  });
});
