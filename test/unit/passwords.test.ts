/**
 * Password entries and their check (docs/security.md): salted PBKDF2-SHA256 with
 * 100,000 iterations, and the same work whether the user exists or not, so that
 * the time a refusal takes tells nothing.
 */
import { pbkdf2Sync } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PasswordFile, passwordEntry } from "../../broker/auth/passwords.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("a password entry (npm run passwd)", () => {
  it("is PBKDF2-SHA256 of 100,000 iterations over a fresh 16-byte salt, 32 bytes long", async () => {
    const entry = await passwordEntry("alice", "correct horse");
    const [user, scheme, iterations, salt, hash] = entry.split(":") as [
      string,
      string,
      string,
      string,
      string,
    ];
    expect([user, scheme, iterations]).toEqual(["alice", "pbkdf2-sha256", "100000"]);
    const saltBytes = Buffer.from(salt, "base64");
    expect(saltBytes.length).toBe(16);
    // Node's own PBKDF2 agrees: the entry is what it says it is.
    expect(Buffer.from(hash, "base64")).toEqual(
      pbkdf2Sync("correct horse", saltBytes, 100_000, 32, "sha256"),
    );
    expect((await passwordEntry("alice", "correct horse")).split(":")[3]).not.toBe(salt);
  });
});

describe("checking a password", () => {
  it("derives once with the same parameters for the right password, a wrong one and an unknown user", async () => {
    const file = new PasswordFile(await passwordEntry("alice", "alice-pw"));
    const derive = vi.spyOn(crypto.subtle, "deriveBits");
    expect(await file.verify("alice", utf8("alice-pw"))).toBe(true);
    expect(await file.verify("alice", utf8("wrong"))).toBe(false);
    expect(await file.verify("mallory", utf8("alice-pw"))).toBe(false);
    const work = derive.mock.calls.map(([params, , bits]) => {
      const p = params as { name: string; hash: string; iterations: number; salt: Uint8Array };
      return [p.name, p.hash, p.iterations, p.salt.byteLength, bits];
    });
    expect(work).toEqual(Array(3).fill(["PBKDF2", "SHA-256", 100_000, 16, 256]));
  });

  it("refuses an unknown user whatever the password, the decoy's hash included", async () => {
    const file = new PasswordFile(await passwordEntry("alice", "alice-pw"));
    // The decoy checked for unknown users has an all-zero salt and hash: no password
    // may pass for it, not even one that derives to zeros (none does, but the check
    // must not depend on that).
    vi.spyOn(crypto.subtle, "deriveBits").mockResolvedValue(new ArrayBuffer(32));
    expect(await file.verify("mallory", utf8("anything"))).toBe(false);
  });
});
