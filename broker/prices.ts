/**
 * Cloudflare's published usage prices for what Nimbus is billed for (Workers Paid
 * plan, as DESIGN.md and the README's "Cost model" record them, late 2026), without
 * the plan's included usage. The load benchmark prices a run with them and the
 * console's cost meter prices the counters of /api/stats.
 */
export const PRICES = {
  /** $ per Durable Object request (RPC call, fetch, alarm). */
  request: 0.15 / 1e6,
  /** Incoming WebSocket messages are billed 20 to one request. */
  wsMessagesPerRequest: 20,
  /** $ per SQLite row written. */
  rowWritten: 1.0 / 1e6,
  /** $ per GB-second of duration; an object is billed at 128 MB. */
  gbSecond: 12.5 / 1e6,
  objectGb: 0.128,
  /** Workers Logs: $ per log line past the included volume. */
  logLine: 0.6 / 1e6,
  /** AWS IoT Core: $ per message (publish or delivery). */
  awsMessage: 1.0 / 1e6,
} as const;
