/**
 * Comparing secrets in time that does not depend on where they differ: the
 * platform's `crypto.subtle.timingSafeEqual` on Workers, and a loop without an
 * early exit only where the platform lacks it (Node, which runs the unit tests).
 */

/** Whether `a` and `b` hold the same bytes; a length that differs is unequal (and says so at once). */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const subtle: Partial<Pick<SubtleCrypto, "timingSafeEqual">> = crypto.subtle;
  if (subtle.timingSafeEqual !== undefined) return subtle.timingSafeEqual.call(crypto.subtle, a, b);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/**
 * Whether a secret given by a client equals the expected one, neither its bytes
 * nor its length told by the time taken: both are hashed first (SHA-256), so the
 * comparison is of two 32-byte digests.
 */
export async function secretEquals(given: string, expected: string): Promise<boolean> {
  const digest = async (s: string) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return timingSafeEqual(await digest(given), await digest(expected));
}
