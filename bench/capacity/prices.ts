/**
 * Published prices and platform limits the benchmark and `npm run capacity` price
 * with, each with where it comes from. Read on 2026-12-03 (UTC) through the
 * project's documentation search, from these pages (and Cloudflare's docs source):
 *
 * - Cloudflare Workers pricing: https://developers.cloudflare.com/workers/platform/pricing/
 *   ("minimum charge of $5 USD per month for an account"; Standard: 10 million requests
 *   included + $0.30/million, 30 million CPU ms included + $0.02/million ms; a WebSocket
 *   connection to a Worker is one request, its messages are not).
 * - Durable Objects pricing: https://developers.cloudflare.com/durable-objects/platform/pricing/
 *   (requests 1 million included + $0.15/million, incoming WebSocket messages 20:1;
 *   duration 400,000 GB-s included + $12.50/million GB-s at 128 MB an object; SQLite rows
 *   read 25 billion included + $0.001/million, rows written 50 million included +
 *   $1.00/million, each setAlarm a row; stored data 5 GB-month + $0.20/GB-month).
 * - Workers Logs: 20 million log events included a month + $0.60/million (until 2026-12-01's
 *   change to Cloudflare Observability pricing, which the page announces and does not give).
 * - Limits: https://developers.cloudflare.com/workers/platform/limits/ and
 *   https://developers.cloudflare.com/durable-objects/platform/limits/ (128 MB memory per
 *   isolate; subrequests 10,000 per request on Workers Paid, 1,000 on older versions of
 *   the page; a soft limit of about 1,000 requests a second per object; 32,768
 *   WebSockets per object), as DESIGN.md records them.
 * - AWS IoT Core: https://aws.amazon.com/iot-core/pricing/ and its "additional metering
 *   details" page: messages metered in 5 KB increments, $1.00/million for the first
 *   billion a month, $0.80 the next 4 billion, $0.70 beyond (US East; Tokyo is 1.2×);
 *   connectivity $0.08 per million connection-minutes; PUBLISH in and out, CONNECT,
 *   SUBSCRIBE and a device's PUBACK metered (a 3.1.1 PUBACK as one 5 KB message);
 *   PINGREQ, CONNACK, SUBACK, the service's PUBACK, DISCONNECT free. Rules: $0.15 per
 *   million rules triggered and $0.15 per million actions (US East, as the pricing page
 *   lists them; the stored copy we could read did not show these two lines: check
 *   before relying on them). Free tier: 12 months only, left out.
 * - EMQX Serverless: https://docs.emqx.com/en/cloud/latest/price/pricing.html
 *   (1 million session-minutes a month free + $2.00/million; traffic 1 GB free +
 *   $0.15/GB; 1 million rule actions free + $0.25/million) and its quotas page (a
 *   Serverless deployment: at most 1,000 messages a second (TPS), 10 publishes a second
 *   per client).
 */

import { PRICES } from "../../broker/prices.ts";

export const READ_ON = "2026-12-03";

export const CLOUDFLARE = {
  /** Workers Paid: the monthly minimum, which includes the allowances below. */
  monthlyMinimum: 5,
  workerRequest: { included: 10e6, price: 0.3 / 1e6 },
  workerCpuMs: { included: 30e6, price: 0.02 / 1e6 },
  doRequest: { included: 1e6, price: PRICES.request },
  /** Incoming WebSocket messages are billed 20 to one request. */
  wsMessagesPerRequest: PRICES.wsMessagesPerRequest,
  gbSecond: { included: 400_000, price: PRICES.gbSecond },
  /** Duration is billed at 128 MB an object, whatever it uses. */
  objectGb: PRICES.objectGb,
  rowWritten: { included: 50e6, price: PRICES.rowWritten },
  rowRead: { included: 25e9, price: 0.001 / 1e6 },
  storedGbMonth: { included: 5, price: 0.2 },
  logLine: { included: 20e6, price: PRICES.logLine },
} as const;

export const CLOUDFLARE_LIMITS = {
  /** The soft limit of requests (events) a second an object handles. */
  eventsPerObject: 1_000,
  socketsPerObject: 32_768,
  isolateBytes: 128 * 2 ** 20,
  subrequestsPerRequest: 10_000,
} as const;

export const AWS_IOT = {
  /** Metering unit of a message, bytes. */
  messageUnit: 5 * 1024,
  /** $ per message by monthly volume: up to 1 billion, the next 4 billion, beyond. */
  messageTiers: [
    { upTo: 1e9, price: 1.0 / 1e6 },
    { upTo: 5e9, price: 0.8 / 1e6 },
    { upTo: Number.POSITIVE_INFINITY, price: 0.7 / 1e6 },
  ],
  connectionMinute: 0.08 / 1e6,
  ruleTriggered: 0.15 / 1e6,
  ruleAction: 0.15 / 1e6,
} as const;

export const EMQX_SERVERLESS = {
  sessionMinute: { included: 1e6, price: 2.0 / 1e6 },
  trafficGb: { included: 1, price: 0.15 },
  ruleAction: { included: 1e6, price: 0.25 / 1e6 },
  /** Quotas of a Serverless deployment. */
  maxMessagesPerSecond: 1_000,
  maxPublishesPerClientPerSecond: 10,
} as const;

/** Seconds in the month the model bills (30 days). */
export const MONTH_SECONDS = 30 * 24 * 3600;
