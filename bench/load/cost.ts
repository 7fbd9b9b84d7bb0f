/**
 * The cost model: what Cloudflare would bill for a scenario, from the counters
 * every gateway and shard keeps, at Cloudflare's published Durable Objects prices
 * (bench/capacity/prices.ts says where each comes from), per million messages
 * delivered, without the monthly allowances (a scenario's marginal cost); beside AWS
 * IoT Core's $1.00 per million messages, where each publish and each delivery counts.
 */
import type { BrokerStats } from "../../broker/stats.ts";
import { AWS_IOT, CLOUDFLARE } from "../capacity/prices.ts";

export const PRICES = {
  /** $ per Durable Object request (RPC call, fetch, alarm). */
  request: CLOUDFLARE.doRequest.price,
  /** Incoming WebSocket messages are billed 20 to one request. */
  wsMessagesPerRequest: CLOUDFLARE.wsMessagesPerRequest,
  /** $ per SQLite row written. */
  rowWritten: CLOUDFLARE.rowWritten.price,
  /** $ per GB-second of duration; an object is billed at 128 MB. */
  gbSecond: CLOUDFLARE.gbSecond.price,
  objectGb: CLOUDFLARE.objectGb,
  /** Workers Logs: $ per log line past the included volume. */
  logLine: CLOUDFLARE.logLine.price,
  /** AWS IoT Core: $ per message (publish or delivery) in the first billion a month. */
  awsMessage: AWS_IOT.messageTiers[0].price,
};

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
