/**
 * The JS heap of workerd's isolates, read through wrangler's inspector
 * (`Runtime.getHeapUsage` over every target, as test/e2e/overload.test.ts does):
 * locally the Worker and all its objects share the isolates listed there, so the
 * sum bounds any one gateway's heap from above. Each read is bounded in time: a
 * busy isolate answers late, and an overloaded one not at all.
 */
import WebSocket from "ws";

/**
 * Sends `methods` in order and resolves with the answer to the last. Only the last
 * answer is awaited: wrangler's inspector proxy does not always pass an answer back
 * under the id it was asked with (HeapProfiler.collectGarbage), and the isolate
 * handles the messages in order anyway.
 */
async function call(url: string, methods: string[], timeoutMs: number): Promise<unknown> {
  const ws = new WebSocket(url);
  const last = methods.length;
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${methods.join(", ")}: no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
      ws.once("error", reject);
      ws.once("open", () => {
        for (const [i, method] of methods.entries()) ws.send(JSON.stringify({ id: i + 1, method }));
      });
      ws.on("message", (data) => {
        const reply = JSON.parse(data.toString()) as { id?: number; result?: unknown };
        if (reply.id !== last) return;
        clearTimeout(timer);
        resolve(reply.result);
      });
    });
  } finally {
    ws.close();
  }
}

async function targets(port: number): Promise<string[]> {
  const list = (await (
    await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(5_000) })
  ).json()) as Array<{ webSocketDebuggerUrl: string }>;
  return list.map((t) => t.webSocketDebuggerUrl);
}

/** Bytes of JS heap in use over every isolate; `collect` runs a garbage collection first. NaN if one did not answer. */
export async function isolateHeap(
  port: number,
  options: { collect?: boolean; timeoutMs?: number } = {},
): Promise<number> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  try {
    let total = 0;
    for (const url of await targets(port)) {
      const methods = options.collect
        ? ["HeapProfiler.collectGarbage", "Runtime.getHeapUsage"]
        : ["Runtime.getHeapUsage"];
      const usage = (await call(url, methods, timeoutMs)) as { usedSize?: number } | undefined;
      total += usage?.usedSize ?? Number.NaN;
    }
    return total;
  } catch {
    return Number.NaN;
  }
}
