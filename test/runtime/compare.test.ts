/** Inside workerd: the platform's crypto.subtle.timingSafeEqual is there, and it is the one used. */
import { describe, expect, it } from "vitest";
import { secretEquals, timingSafeEqual } from "../../broker/auth/compare.ts";

describe("timing-safe comparison on Workers", () => {
  it("crypto.subtle.timingSafeEqual exists and answers as the fallback would", async () => {
    expect(typeof crypto.subtle.timingSafeEqual).toBe("function");
    expect(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2]))).toBe(true);
    expect(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3]))).toBe(false);
    expect(await secretEquals("a", "a")).toBe(true);
    expect(await secretEquals("a", "b")).toBe(false);
  });
});
