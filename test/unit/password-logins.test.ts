/**
 * Password logins with the user store and the peppered verifier cache: what each
 * login costs (full PBKDF2 checks counted by spying on deriveBits), that a
 * verifier never lets a wrong password in, that a changed hash or pepper makes an
 * old verifier worthless, that MQTT_PASSWORDS wins over the store, and the bounds
 * of names and hashes the store takes.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConnectAuthenticator } from "../../broker/auth/authenticator.ts";
import { LoginVerifiers } from "../../broker/auth/login-verifier.ts";
import {
  type LoginCounter,
  PasswordLogins,
  type UserLookup,
  type UserRecord,
} from "../../broker/auth/password-logins.ts";
import {
  hashPassword,
  PasswordFile,
  passwordEntry,
  passwordHashProblem,
} from "../../broker/auth/passwords.ts";
import { MAX_USER_NAME_BYTES, userNameProblem } from "../../broker/auth/user-names.ts";
import { ConfigError, readConfig } from "../../broker/config.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const PEPPER = "p".repeat(32);
const OTHER_PEPPER = "q".repeat(32);

/** The store as a map; counts its calls. */
class FakeStore implements UserLookup {
  readonly hashes = new Map<string, string>();
  readonly verifiers = new Map<string, Uint8Array>();
  lookups = 0;
  down = false;

  async lookup(name: string): Promise<UserRecord> {
    this.lookups++;
    if (this.down) throw new Error("store unreachable");
    return { hash: this.hashes.get(name) ?? null, verifier: this.verifiers.get(name) ?? null };
  }

  async remember(name: string, verifier: Uint8Array): Promise<void> {
    this.verifiers.set(name, verifier);
  }
}

let pbkdf2: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  pbkdf2 = vi.spyOn(crypto.subtle, "deriveBits");
});
afterEach(() => {
  pbkdf2.mockRestore();
});

function logins(
  store: FakeStore,
  file = "",
  verifiers: LoginVerifiers | undefined = new LoginVerifiers(PEPPER),
) {
  const counted: LoginCounter[] = [];
  return {
    counted,
    logins: new PasswordLogins(new PasswordFile(file), store, verifiers, (c) => counted.push(c)),
  };
}

describe("password logins with a verifier cache", () => {
  it("checks the first login in full, then accepts the same login with one HMAC", async () => {
    const store = new FakeStore();
    store.hashes.set("alice", await hashPassword("pw"));
    const { logins: l, counted } = logins(store);
    pbkdf2.mockClear();
    expect(await l.check("alice", utf8("pw"), true)).toBe("accepted");
    expect(pbkdf2).toHaveBeenCalledTimes(1);
    expect(store.verifiers.get("alice")).toHaveLength(32);
    expect(await l.check("alice", utf8("pw"), true)).toBe("accepted");
    expect(pbkdf2).toHaveBeenCalledTimes(1);
    expect(counted).toEqual(["logins_full_check", "logins_verifier"]);
  });

  it("a verifier accepts only its own login: a wrong password still costs a full check and is refused", async () => {
    const store = new FakeStore();
    store.hashes.set("alice", await hashPassword("pw"));
    const { logins: l } = logins(store);
    await l.check("alice", utf8("pw"), true);
    pbkdf2.mockClear();
    expect(await l.check("alice", utf8("pw "), true)).toBe("refused");
    expect(await l.check("alice", utf8(""), true)).toBe("refused");
    // As much work as an unknown name with a decoy, or a user with no verifier.
    expect(pbkdf2).toHaveBeenCalledTimes(2);
    expect(await l.check("nobody", utf8("pw"), true)).toBe("unknown");
    expect(pbkdf2).toHaveBeenCalledTimes(3);
    // Without a decoy (anonymous access would let an unknown name in anyway): no work.
    expect(await l.check("nobody", utf8("pw"), false)).toBe("unknown");
    expect(pbkdf2).toHaveBeenCalledTimes(3);
  });

  it("a password with zero bytes added is refused after a full check, though PBKDF2 derives the same hash", async () => {
    const store = new FakeStore();
    store.hashes.set("alice", await hashPassword("pw"));
    const { logins: l } = logins(store);
    const padded = new Uint8Array([...utf8("pw"), 0, 0]);
    pbkdf2.mockClear();
    expect(await l.check("alice", padded, true)).toBe("refused");
    expect(await l.check("alice", utf8("pw\0"), true)).toBe("refused");
    expect(pbkdf2).toHaveBeenCalledTimes(2);
    expect(store.verifiers.size).toBe(0);
    expect(await l.check("alice", utf8("pw"), true)).toBe("accepted");
    // No hash is made of a password that has one, nor an entry for MQTT_PASSWORDS.
    await expect(hashPassword("pw\0")).rejects.toThrow(/U\+0000/);
    await expect(passwordEntry("bob", "a\0b")).rejects.toThrow(/U\+0000/);
  });

  it("a verifier stands in for PBKDF2 entirely: it is made for the name and hash, not checked against them", async () => {
    // The hash belongs to another password: only the verifier can accept "pw".
    const store = new FakeStore();
    const hash = await hashPassword("something else");
    store.hashes.set("alice", hash);
    store.verifiers.set("alice", await new LoginVerifiers(PEPPER).make("alice", hash, utf8("pw")));
    const { logins: l } = logins(store);
    pbkdf2.mockClear();
    expect(await l.check("alice", utf8("pw"), true)).toBe("accepted");
    expect(pbkdf2).not.toHaveBeenCalled();
    // Another user's verifier, or one made for another hash, accepts nothing.
    store.hashes.set("bob", hash);
    store.verifiers.set("bob", store.verifiers.get("alice") as Uint8Array);
    expect(await l.check("bob", utf8("pw"), true)).toBe("refused");
    store.hashes.set("alice", await hashPassword("something else"));
    pbkdf2.mockClear();
    expect(await l.check("alice", utf8("pw"), true)).toBe("refused");
    expect(pbkdf2).toHaveBeenCalledTimes(1);
  });

  it("a changed password makes the old verifier worthless", async () => {
    const store = new FakeStore();
    store.hashes.set("alice", await hashPassword("old"));
    const { logins: l } = logins(store);
    expect(await l.check("alice", utf8("old"), true)).toBe("accepted");
    // Replaced, as a PUT does, even if the old verifier row were left behind.
    store.hashes.set("alice", await hashPassword("new"));
    expect(await l.check("alice", utf8("old"), true)).toBe("refused");
    expect(await l.check("alice", utf8("new"), true)).toBe("accepted");
  });

  it("fields are framed: (ab, c) and (a, bc) give different verifiers", async () => {
    const v = new LoginVerifiers(PEPPER);
    const a = await v.make("ab", "c", utf8("pw"));
    expect(await v.make("a", "bc", utf8("pw"))).not.toEqual(a);
    expect(await v.make("ab", "c", utf8("pw"))).toEqual(a);
    expect(await new LoginVerifiers(OTHER_PEPPER).make("ab", "c", utf8("pw"))).not.toEqual(a);
  });

  it("after a pepper rotation, AUTH_PEPPER_PREVIOUS accepts old verifiers and has them made again", async () => {
    const store = new FakeStore();
    const hash = await hashPassword("pw");
    store.hashes.set("alice", hash);
    store.hashes.set("bob", hash);
    await logins(store, "", new LoginVerifiers(PEPPER)).logins.check("alice", utf8("pw"), true);
    await logins(store, "", new LoginVerifiers(PEPPER)).logins.check("bob", utf8("pw"), true);
    const rotated = logins(store, "", new LoginVerifiers(OTHER_PEPPER, PEPPER)).logins;
    pbkdf2.mockClear();
    expect(await rotated.check("alice", utf8("pw"), true)).toBe("accepted");
    expect(pbkdf2).not.toHaveBeenCalled();
    expect(store.verifiers.get("alice")).toEqual(
      await new LoginVerifiers(OTHER_PEPPER).make("alice", hash, utf8("pw")),
    );
    // Without the previous pepper, every verifier is dead: one full check each, then cached again.
    const fresh = logins(store, "", new LoginVerifiers(OTHER_PEPPER)).logins;
    expect(await fresh.check("bob", utf8("pw"), true)).toBe("accepted");
    expect(pbkdf2).toHaveBeenCalledTimes(1);
    expect(await fresh.check("bob", utf8("pw"), true)).toBe("accepted");
    expect(pbkdf2).toHaveBeenCalledTimes(1);
  });

  it("without a pepper nothing is kept and every login is a full check", async () => {
    const store = new FakeStore();
    store.hashes.set("alice", await hashPassword("pw"));
    const l = new PasswordLogins(new PasswordFile(""), store);
    pbkdf2.mockClear();
    expect(await l.check("alice", utf8("pw"), true)).toBe("accepted");
    expect(await l.check("alice", utf8("pw"), true)).toBe("accepted");
    expect(pbkdf2).toHaveBeenCalledTimes(2);
    expect(store.verifiers.size).toBe(0);
  });

  it("MQTT_PASSWORDS wins over the store for a name in both, and its users are cached too", async () => {
    const store = new FakeStore();
    store.hashes.set("carol", await hashPassword("store-pw"));
    const { logins: l } = logins(store, await passwordEntry("carol", "secret-pw"));
    expect(await l.check("carol", utf8("store-pw"), true)).toBe("refused");
    expect(await l.check("carol", utf8("secret-pw"), true)).toBe("accepted");
    pbkdf2.mockClear();
    expect(await l.check("carol", utf8("secret-pw"), true)).toBe("accepted");
    expect(pbkdf2).not.toHaveBeenCalled();
  });

  it("a name the store cannot hold is not looked up, and costs a decoy's full check", async () => {
    const store = new FakeStore();
    const { logins: l } = logins(store);
    pbkdf2.mockClear();
    expect(await l.check("x".repeat(65_535), utf8("pw"), true)).toBe("unknown");
    expect(await l.check("a\nb", utf8("pw"), true)).toBe("unknown");
    expect(await l.known("x".repeat(257))).toBe(false);
    expect(store.lookups).toBe(0);
    expect(pbkdf2).toHaveBeenCalledTimes(2);
  });

  it("a user of the secret still logs in while the store is unreachable; a store user cannot", async () => {
    const store = new FakeStore();
    store.hashes.set("alice", await hashPassword("pw"));
    const { logins: l } = logins(store, await passwordEntry("carol", "secret-pw"));
    store.down = true;
    expect(await l.check("carol", utf8("secret-pw"), true)).toBe("accepted");
    await expect(l.check("alice", utf8("pw"), true)).rejects.toThrow("store unreachable");
  });
});

describe("CONNECT with the user store", () => {
  async function authenticator(allowAnonymous: boolean) {
    const store = new FakeStore();
    store.hashes.set("alice", await hashPassword("pw"));
    return new ConnectAuthenticator({ allowAnonymous, logins: logins(store).logins, jwt: {} });
  }

  it("anonymous access lets unknown names in, but never a stored user's name without its password", async () => {
    const open = await authenticator(true);
    expect(await open.authenticate({ clientId: "c", username: "alice", password: utf8("pw") })).toEqual({
      ok: true,
      identity: { username: "alice", via: "password" },
    });
    expect(await open.authenticate({ clientId: "c", username: "alice" })).toMatchObject({
      ok: false,
      code: "bad-credentials",
    });
    expect(await open.authenticate({ clientId: "c", username: "alice", password: utf8("no") })).toMatchObject(
      {
        ok: false,
        code: "bad-credentials",
      },
    );
    expect(await open.authenticate({ clientId: "c", username: "dev", password: utf8("x") })).toEqual({
      ok: true,
      identity: { username: "dev", via: "anonymous" },
    });
  });

  it("without anonymous access an unknown name is refused as a wrong password is, after as much work", async () => {
    const closed = await authenticator(false);
    pbkdf2.mockClear();
    expect(await closed.authenticate({ clientId: "c", username: "dev", password: utf8("x") })).toMatchObject({
      ok: false,
      code: "bad-credentials",
    });
    expect(pbkdf2).toHaveBeenCalledTimes(1);
    expect(await closed.authenticate({ clientId: "c", username: "dev" })).toMatchObject({
      ok: false,
      code: "not-authorized",
    });
  });
});

describe("what the store takes", () => {
  it("user names: 1 to 256 UTF-8 bytes, no control characters, no lone surrogates; / + # % are ordinary", () => {
    expect(MAX_USER_NAME_BYTES).toBe(256);
    for (const ok of [
      "a",
      "a/b",
      "+",
      "#",
      "%",
      "%2F",
      "a b",
      "名前",
      "é".repeat(128),
      "x".repeat(256),
      "😀",
    ])
      expect(userNameProblem(ok), ok).toBeNull();
    expect(userNameProblem("")).toMatch(/empty/);
    expect(userNameProblem("x".repeat(257))).toMatch(/257 bytes/);
    expect(userNameProblem(`${"é".repeat(128)}x`)).toMatch(/257 bytes/);
    for (const bad of ["a\u0000", "a\nb", "\t", "\u007f", "\u0085", "\u009f"])
      expect(userNameProblem(bad), JSON.stringify(bad)).toMatch(/control/);
    expect(userNameProblem("a\ud800")).toMatch(/well-formed/);
    expect(userNameProblem("\udc00a")).toMatch(/well-formed/);
  });

  it("hashes: PBKDF2-SHA256 with today's iterations, a salt of 16 to 64 bytes and a 32-byte hash", async () => {
    const good = await hashPassword("pw");
    expect(passwordHashProblem(good)).toBeNull();
    const [, , salt, hash] = good.split(":") as [string, string, string, string];
    const b64 = (n: number) => Buffer.alloc(n).toString("base64");
    expect(passwordHashProblem(`pbkdf2-sha256:1000:${salt}:${hash}`)).toMatch(/100000 iterations/);
    expect(passwordHashProblem(`pbkdf2-sha256:200000:${salt}:${hash}`)).toMatch(/100000 iterations/);
    expect(passwordHashProblem(`pbkdf2-sha1:100000:${salt}:${hash}`)).toMatch(/pbkdf2-sha256/);
    expect(passwordHashProblem(`pbkdf2-sha256:100000:${b64(8)}:${hash}`)).toMatch(/salt/);
    expect(passwordHashProblem(`pbkdf2-sha256:100000:${b64(65)}:${hash}`)).toMatch(/salt/);
    expect(passwordHashProblem(`pbkdf2-sha256:100000:${salt}:${b64(31)}`)).toMatch(/32 bytes/);
    expect(passwordHashProblem(`pbkdf2-sha256:100000:${salt}:!!`)).toMatch(/pbkdf2-sha256/);
    expect(passwordHashProblem(`${good}:extra`)).toMatch(/pbkdf2-sha256/);
    expect(passwordHashProblem(`alice:${good}`)).toMatch(/pbkdf2-sha256/);
  });

  it("a pepper shorter than 32 bytes is refused with the other settings", () => {
    expect(() => readConfig({ AUTH_PEPPER: "short" })).toThrow(ConfigError);
    expect(() => readConfig({ AUTH_PEPPER_PREVIOUS: "x".repeat(31) })).toThrow(/AUTH_PEPPER_PREVIOUS/);
    expect(readConfig({ AUTH_PEPPER: PEPPER, AUTH_PEPPER_PREVIOUS: OTHER_PEPPER })).toBeDefined();
  });
});
