/**
 * Sending a rule's batch to its target (README, Integrations): a Queue's
 * `sendBatch`, a webhook's POST, or another Worker's fetch through a service
 * binding. A batch is sent whole or not at all (throws): the outbox retries it.
 */
import { fromBase64, toBase64 } from "../../broker/json.ts";
import type { Target } from "../../broker/rules.ts";

/** How much one call to a target carries (Cloudflare Queues: 100 messages, 256 KB a batch, 128 KB a message). */
export interface TargetLimits {
  maxItems: number;
  maxBytes: number;
  /** A body larger than this can never be sent: it is dead-lettered at once. */
  maxItemBytes: number;
}

export function limitsOf(target: Target): TargetLimits {
  switch (target.kind) {
    case "queue":
      return { maxItems: 100, maxBytes: 250_000, maxItemBytes: 127_000 };
    case "r2":
      // One object per window: up to 1,000 messages, 8 MiB.
      return { maxItems: 1_000, maxBytes: 8 * 2 ** 20, maxItemBytes: 1_900_000 };
    default:
      // A POST of 1 MB; a D1 batch of 100 rows (a row holds 2 MB at most).
      return { maxItems: 100, maxBytes: 1_000_000, maxItemBytes: 1_900_000 };
  }
}

/** A rendered message on its way: `key` is unique within its shard (D1's row id, R2's object name). */
export interface OutgoingItem {
  key: string;
  body: string;
  /** When the shard took the message (epoch ms): R2's object path. */
  createdAt: number;
}

/** The envelope shape (rules.ts render), as a D1 row reads it. */
interface Envelope {
  topic: string;
  payload: string | { base64: string };
  qos: number;
  retain: boolean;
  clientId: string | null;
  userProperties: Array<[string, string]>;
  time: string;
}

/** `<prefix>YYYY/MM/DD/HH/<shard>-<key>.ndjson`, the hour of the first message (UTC). */
export function r2Key(prefix: string, shard: string, first: OutgoingItem): string {
  const hour = new Date(first.createdAt).toISOString().slice(0, 13).replace(/[-T]/g, "/");
  return `${prefix}${hour}/${shard}-${first.key}.ndjson`;
}

/**
 * Headers of a POST to a webhook, as Standard Webhooks (standardwebhooks.com)
 * names them, so that its libraries verify what Nimbus sends: `webhook-id`, the
 * same for every attempt of one batch (so a receiver detects a retry or a
 * replay), `webhook-timestamp` (Unix seconds) and, with a secret,
 * `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
 */
export const ID_HEADER = "webhook-id";
export const TIMESTAMP_HEADER = "webhook-timestamp";
export const SIGNATURE_HEADER = "webhook-signature";
/** The headers of earlier releases, still sent: HMAC-SHA256 of `${time}.${body}` in hex (README, Integrations). */
export const LEGACY_TIMESTAMP_HEADER = "x-nimbus-timestamp";
export const LEGACY_SIGNATURE_HEADER = "x-nimbus-signature";
/** A POST that takes longer than this failed (and is retried). */
const POST_TIMEOUT_MS = 10_000;

/** `items` (each already rendered by the rule) from shard `shard`. */
export async function send(target: Target, env: object, items: OutgoingItem[], shard: string): Promise<void> {
  const bodies = items.map((i) => i.body);
  switch (target.kind) {
    case "r2": {
      const [first] = items;
      if (first === undefined) return;
      // Named after its first message: sent again after a failure, it replaces itself.
      await (Reflect.get(env, target.binding) as R2Bucket).put(
        r2Key(target.prefix, shard, first),
        `${bodies.join("\n")}\n`,
        {
          httpMetadata: { contentType: "application/x-ndjson" },
          customMetadata: { messages: String(items.length) },
        },
      );
      return;
    }
    case "d1": {
      const db = Reflect.get(env, target.binding) as D1Database;
      // INSERT OR IGNORE on the message's key: a batch sent again adds no row twice.
      const insert = db.prepare(
        `INSERT OR IGNORE INTO ${target.table} (id, topic, payload, qos, retain, client_id, user_properties, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      await db.batch(
        items.map((i) => {
          const e = JSON.parse(i.body) as Envelope;
          return insert.bind(
            `${shard}:${i.key}`,
            e.topic,
            typeof e.payload === "string" ? e.payload : JSON.stringify(e.payload),
            e.qos,
            e.retain ? 1 : 0,
            e.clientId,
            JSON.stringify(e.userProperties),
            e.time,
          );
        }),
      );
      return;
    }
    case "queue": {
      const queue = Reflect.get(env, target.binding) as Queue;
      await queue.sendBatch(
        bodies.map((b) => ({ body: JSON.parse(b) as unknown, contentType: "json" as const })),
      );
      return;
    }
    case "webhook": {
      const secret = target.secret === undefined ? undefined : (Reflect.get(env, target.secret) as string);
      const init = await post(bodies, { id: deliveryId(shard, items), secret });
      // A redirect is not followed: the signed body would go where the rule does not say.
      const res = await fetch(target.url, { ...init, redirect: "manual" });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`webhook answered ${res.status}`);
      return;
    }
    case "service": {
      const service = Reflect.get(env, target.binding) as Fetcher;
      const res = await service.fetch(
        `https://${target.binding.toLowerCase()}${target.path}`,
        await post(bodies, { id: deliveryId(shard, items) }),
      );
      await res.body?.cancel();
      if (!res.ok) throw new Error(`service answered ${res.status}`);
      return;
    }
  }
}

/**
 * The id of one batch's delivery: its shard and the keys of its first and last
 * message, the same at every attempt (a batch sent again is read again from the
 * outbox in the same order) and never another batch's.
 */
export function deliveryId(shard: string, items: OutgoingItem[]): string {
  return `nimbus_${shard}_${items[0]?.key ?? ""}_${items.at(-1)?.key ?? ""}`;
}

async function post(bodies: string[], signing: { id?: string; secret?: string } = {}): Promise<RequestInit> {
  const text = `[${bodies.join(",")}]`;
  const headers: Record<string, string> = { "content-type": "application/json" };
  const time = String(Math.floor(Date.now() / 1000));
  if (signing.id !== undefined) {
    headers[ID_HEADER] = signing.id;
    headers[TIMESTAMP_HEADER] = time;
  }
  const secret = signing.secret;
  if (secret !== undefined) {
    if (signing.id !== undefined) {
      const mac = await hmac(webhookKey(secret), `${signing.id}.${time}.${text}`);
      headers[SIGNATURE_HEADER] = `v1,${toBase64(mac)}`;
    }
    headers[LEGACY_TIMESTAMP_HEADER] = time;
    headers[LEGACY_SIGNATURE_HEADER] = `sha256=${await hmacHex(secret, `${time}.${text}`)}`;
  }
  return { method: "POST", body: text, headers, signal: AbortSignal.timeout(POST_TIMEOUT_MS) };
}

/**
 * The key of Standard Webhooks signatures: a secret written `whsec_<base64>` (as
 * the libraries make them) is those bytes; any other secret is its UTF-8 bytes
 * (give a library `whsec_` and their base64).
 */
export function webhookKey(secret: string): Uint8Array {
  if (secret.startsWith("whsec_")) {
    try {
      return fromBase64(secret.slice("whsec_".length));
    } catch {
      // not base64 after all: the text is the key
    }
  }
  return new TextEncoder().encode(secret);
}

async function hmac(key: Uint8Array, data: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(data)));
}

/** HMAC-SHA256 of `data` under `secret`, in hex (what a receiver computes to check a POST). */
export async function hmacHex(secret: string, data: string): Promise<string> {
  const mac = await hmac(new TextEncoder().encode(secret), data);
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}
