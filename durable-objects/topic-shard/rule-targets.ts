/**
 * Sending a rule's batch to its target (README, Integrations): a Queue's
 * `sendBatch`, a webhook's POST, or another Worker's fetch through a service
 * binding. A batch is sent whole or not at all (throws): the outbox retries it.
 */
import type { Target } from "../../broker/rules.ts";

/** How much one call to a target carries (Cloudflare Queues: 100 messages, 256 KB a batch, 128 KB a message). */
export interface TargetLimits {
  maxItems: number;
  maxBytes: number;
  /** A body larger than this can never be sent: it is dead-lettered at once. */
  maxItemBytes: number;
}

export function limitsOf(target: Target): TargetLimits {
  return target.kind === "queue"
    ? { maxItems: 100, maxBytes: 250_000, maxItemBytes: 127_000 }
    : { maxItems: 100, maxBytes: 1_000_000, maxItemBytes: 1_900_000 };
}

/** Header names of a signed POST: the time it was signed, and HMAC-SHA256 of `${time}.${body}` in hex. */
export const SIGNATURE_HEADER = "x-nimbus-signature";
export const TIMESTAMP_HEADER = "x-nimbus-timestamp";
/** A POST that takes longer than this failed (and is retried). */
const POST_TIMEOUT_MS = 10_000;

/** `bodies` as JSON texts (each already rendered by the rule). */
export async function send(target: Target, env: Record<string, unknown>, bodies: string[]): Promise<void> {
  switch (target.kind) {
    case "queue": {
      const queue = env[target.binding] as Queue;
      await queue.sendBatch(
        bodies.map((b) => ({ body: JSON.parse(b) as unknown, contentType: "json" as const })),
      );
      return;
    }
    case "webhook": {
      const secret = target.secret === undefined ? undefined : (env[target.secret] as string);
      const res = await fetch(target.url, await post(bodies, secret));
      await res.body?.cancel();
      if (!res.ok) throw new Error(`webhook answered ${res.status}`);
      return;
    }
    case "service": {
      const service = env[target.binding] as Fetcher;
      const res = await service.fetch(
        `https://${target.binding.toLowerCase()}${target.path}`,
        await post(bodies),
      );
      await res.body?.cancel();
      if (!res.ok) throw new Error(`service answered ${res.status}`);
      return;
    }
  }
}

async function post(bodies: string[], secret?: string): Promise<RequestInit> {
  const text = `[${bodies.join(",")}]`;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (secret !== undefined) {
    const time = String(Math.floor(Date.now() / 1000));
    headers[TIMESTAMP_HEADER] = time;
    headers[SIGNATURE_HEADER] = `sha256=${await hmacHex(secret, `${time}.${text}`)}`;
  }
  return { method: "POST", body: text, headers, signal: AbortSignal.timeout(POST_TIMEOUT_MS) };
}

/** HMAC-SHA256 of `data` under `secret`, in hex (what a receiver computes to check a POST). */
export async function hmacHex(secret: string, data: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}
