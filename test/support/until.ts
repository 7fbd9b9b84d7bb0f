/**
 * Waiting for something a test cannot be told of (a timer's write, a row gone):
 * polled, with a deadline far past when it should hold, instead of a fixed sleep
 * that is either too short on a busy machine or longer than needed.
 */

/**
 * Reads until the value is `done` (equal to it, or a test it passes) or `ms` have
 * passed; the last value read, for the test's expect.
 */
export async function until<T>(
  read: () => Promise<T>,
  done: T | ((value: T) => boolean),
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    const reached = typeof done === "function" ? (done as (value: T) => boolean)(value) : value === done;
    if (reached || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}
