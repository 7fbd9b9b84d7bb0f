/**
 * The cost model: what Cloudflare would bill for a scenario, from the counters
 * every gateway and shard keeps, at Cloudflare's published Durable Objects prices
 * (as of late 2026, see README), per million messages delivered; beside AWS IoT
 * Core's $1.00 per million messages, where each publish and each delivery counts.
 * The prices: broker/prices.ts.
 */
import { PRICES } from "../../broker/prices.ts";
import type { BrokerStats } from "../../broker/stats.ts";

export interface Cost {
  delivered: number;
  requests: number;
  wsIn: number;
  rowsWritten: number;
  logLines: number;
  objectSeconds: number;
  perMillion: number;
  awsPerMillion: number;
}

export function costOf(before: BrokerStats, after: BrokerStats, seconds: number, objects: number): Cost {
  const delivered = after.messagesOut - before.messagesOut;
  const published = after.messagesIn - before.messagesIn;
  const requests = after.billing.requests - before.billing.requests;
  const wsIn = after.billing.wsMessagesIn - before.billing.wsMessagesIn;
  const rowsWritten = after.billing.rowsWritten - before.billing.rowsWritten;
  const logLines = after.billing.logLines - before.billing.logLines;
  // Duration: every gateway and shard counted awake for the whole scenario (an
  // upper bound under load; idle objects hibernate and are not billed).
  const objectSeconds = seconds * objects;
  const dollars =
    (requests + wsIn / PRICES.wsMessagesPerRequest) * PRICES.request +
    rowsWritten * PRICES.rowWritten +
    logLines * PRICES.logLine +
    objectSeconds * PRICES.objectGb * PRICES.gbSecond;
  const perDelivered = (x: number) => (delivered > 0 ? (x / delivered) * 1e6 : Number.NaN);
  return {
    delivered,
    requests,
    wsIn,
    rowsWritten,
    logLines,
    objectSeconds,
    perMillion: perDelivered(dollars),
    awsPerMillion: perDelivered((published + delivered) * PRICES.awsMessage),
  };
}
