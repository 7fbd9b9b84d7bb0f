/**
 * wrangler configurations for the integration tests: the project's own, plus a
 * producer binding for rules (RULES_QUEUE → nimbus-rules), the broker consuming
 * nimbus-in (the way in), and a consumer Worker (test/fixtures/integrations/)
 * standing for a user's; and a producer binding to the broker's own inbound queue
 * (LOOP_QUEUE → nimbus-in), for a rule that would loop. Written under .wrangler/ (ignored by git), next to the
 * project, since wrangler resolves a configuration's paths from where it is.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");

/** The R2 bucket and D1 database both Workers see (local ones, shared by name and id). */
const STORES = `
[[r2_buckets]]
binding = "ARCHIVE"
bucket_name = "nimbus-archive"

[[d1_databases]]
binding = "DB"
database_name = "nimbus-test"
database_id = "00000000-0000-4000-8000-000000000001"
`;

export function integrationConfigs(): string[] {
  const dir = join(ROOT, ".wrangler", "integrations");
  mkdirSync(dir, { recursive: true });
  const project = readFileSync(join(ROOT, "wrangler.toml"), "utf8")
    .replace('main = "worker/index.ts"', 'main = "../../worker/index.ts"')
    .replace('directory = "./public"', 'directory = "../../public"')
    // The console is built by the project's configuration (the e2e projects start it first).
    .replace(/\[build\][^[]*/, "");
  const broker = join(dir, "broker.toml");
  writeFileSync(
    broker,
    `${project}
[[queues.producers]]
binding = "RULES_QUEUE"
queue = "nimbus-rules"

# A rule's Queue that this same Worker consumes: its envelopes must not come back as publishes.
[[queues.producers]]
binding = "LOOP_QUEUE"
queue = "nimbus-in"

[[services]]
binding = "CONSUMER"
service = "nimbus-test-consumer"

[[queues.consumers]]
queue = "nimbus-in"
max_batch_size = 100
max_batch_timeout = 1
${STORES}`,
  );
  const consumer = join(dir, "consumer.toml");
  writeFileSync(
    consumer,
    `name = "nimbus-test-consumer"
main = "../../test/fixtures/integrations/consumer.ts"
compatibility_date = "2026-11-01"

[[queues.consumers]]
queue = "nimbus-rules"
max_batch_size = 100
max_batch_timeout = 1

[[queues.producers]]
binding = "BACK"
queue = "nimbus-in"
${STORES}`,
  );
  return [broker, consumer];
}

/**
 * Verifies a webhook POST as the Standard Webhooks libraries do
 * (standardwebhooks.com, "Verifying webhooks"): the secret `whsec_<base64>` is
 * the key; the signed content is `${webhook-id}.${webhook-timestamp}.${body}`;
 * `webhook-signature` is a space-separated list of `v1,<base64>`, one of which
 * must match (compared in constant time); a timestamp more than five minutes
 * away is refused. Returns why it does not verify, or null.
 */
export function verifyStandardWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  now = Date.now(),
): string | null {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (typeof id !== "string" || typeof timestamp !== "string" || typeof signatures !== "string")
    return "missing required headers";
  const seconds = Number(timestamp);
  if (!Number.isInteger(seconds) || Math.abs(now / 1000 - seconds) > 5 * 60)
    return "timestamp too old or new";
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest();
  for (const versioned of signatures.split(" ")) {
    const [version, signature] = versioned.split(",");
    if (version !== "v1" || signature === undefined) continue;
    const given = Buffer.from(signature, "base64");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return null;
  }
  return "no matching signature";
}
