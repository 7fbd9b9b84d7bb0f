/** Secrets compared in constant time: the platform's timingSafeEqual where there is one, a fallback in Node. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { secretEquals, timingSafeEqual } from "../../broker/auth/compare.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

describe("timingSafeEqual", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("uses crypto.subtle.timingSafeEqual when the platform has it (Workers)", () => {
    const platform = vi.fn(() => true);
    Object.defineProperty(crypto.subtle, "timingSafeEqual", { value: platform, configurable: true });
    try {
      expect(timingSafeEqual(bytes(1, 2), bytes(1, 3))).toBe(true);
      expect(platform).toHaveBeenCalledOnce();
      // Lengths that differ never reach it (it would throw).
      expect(timingSafeEqual(bytes(1), bytes(1, 2))).toBe(false);
      expect(platform).toHaveBeenCalledOnce();
    } finally {
      Reflect.deleteProperty(crypto.subtle, "timingSafeEqual");
    }
  });

  it("falls back to a loop without early exit where the platform lacks it (Node)", () => {
    expect("timingSafeEqual" in crypto.subtle).toBe(false);
    expect(timingSafeEqual(bytes(1, 2, 3), bytes(1, 2, 3))).toBe(true);
    expect(timingSafeEqual(bytes(1, 2, 3), bytes(1, 2, 4))).toBe(false);
    expect(timingSafeEqual(bytes(), bytes())).toBe(true);
  });

  it("secretEquals compares digests, so the expected secret's length is not compared", async () => {
    expect(await secretEquals("dev-token", "dev-token")).toBe(true);
    expect(await secretEquals("dev-token-", "dev-token")).toBe(false);
    expect(await secretEquals("", "dev-token")).toBe(false);
  });
});
