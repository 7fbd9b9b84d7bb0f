/**
 * The running cost meter: the billing counters of /api/stats (broker/stats.ts,
 * `Billing`) priced at Cloudflare's list prices (broker/prices.ts). It counts
 * Durable Object requests, incoming WebSocket messages (20 to one request), SQLite
 * rows written (each alarm set among them) and Workers Logs lines; it cannot see
 * duration (GB-s of objects kept awake), stored data, the Worker's own requests,
 * nor the plan's included usage, which it does not subtract. The page's own polling
 * is among what it counts: each /api/stats call is a request to every gateway and
 * shard, and the meter says how much of the total that is.
 */

import type { Billing } from "../../broker/billing.ts";
import { PRICES } from "../../broker/prices.ts";
import { billingGrowth, type Reading } from "./readings.ts";

export interface Dollars {
  requests: number;
  wsMessages: number;
  rowsWritten: number;
  logLines: number;
  total: number;
}

export function dollarsOf(b: Billing): Dollars {
  const requests = b.requests * PRICES.request;
  const wsMessages = (b.wsMessagesIn / PRICES.wsMessagesPerRequest) * PRICES.request;
  const rowsWritten = b.rowsWritten * PRICES.rowWritten;
  const logLines = b.logLines * PRICES.logLine;
  return {
    requests,
    wsMessages,
    rowsWritten,
    logLines,
    total: requests + wsMessages + rowsWritten + logLines,
  };
}

/** A month as Cloudflare bills it: 30 days. */
export const SECONDS_PER_MONTH = 30 * 24 * 3600;

const ZERO: Billing = { requests: 0, wsMessagesIn: 0, rowsWritten: 0, logLines: 0 };

function add(a: Billing, b: Billing): Billing {
  return {
    requests: a.requests + b.requests,
    wsMessagesIn: a.wsMessagesIn + b.wsMessagesIn,
    rowsWritten: a.rowsWritten + b.rowsWritten,
    logLines: a.logLines + b.logLines,
  };
}

export interface CostReport {
  /** What was billed since the first reading, by kind. */
  sinceOpen: Dollars;
  /** The billed usage since the first reading (what `sinceOpen` prices). */
  usage: Billing;
  /** Requests the page's own /api/stats calls made, among `usage.requests`. */
  ownRequests: number;
  /** $ a month at the rate of the last `windowMs` (null until two readings are apart in time). */
  perMonth: number | null;
  seconds: number;
}

/**
 * Readings in, cost out. Growth is summed interval by interval, so counts an
 * object lost in a restart are missing rather than subtracted. The rate a month
 * is taken over the readings of the last minute: the current rate, not the
 * average since the page opened.
 */
export class CostMeter {
  private first: Reading | undefined;
  private last: Reading | undefined;
  private usage: Billing = ZERO;
  private ownRequests = 0;
  /** Cumulative usage at each recent reading, for the current rate; bounded by `windowMs`. */
  private recent: Array<{ at: number; total: number }> = [];

  private readonly windowMs: number;

  constructor(windowMs = 60_000) {
    this.windowMs = windowMs;
  }

  add(reading: Reading): void {
    if (this.last !== undefined) {
      this.usage = add(this.usage, billingGrowth(this.last.billing, reading.billing));
      // The call that produced this reading was one request to each object.
      this.ownRequests += reading.objects;
    }
    this.first ??= reading;
    this.last = reading;
    this.recent.push({ at: reading.at, total: dollarsOf(this.usage).total });
    while (this.recent.length > 2 && reading.at - (this.recent[1]?.at ?? reading.at) >= this.windowMs)
      this.recent.shift();
  }

  /** Readings kept for the current rate: those of the last `windowMs`, and one before. */
  get readingsKept(): number {
    return this.recent.length;
  }

  report(): CostReport {
    const oldest = this.recent[0];
    const newest = this.recent.at(-1);
    const span = oldest && newest ? (newest.at - oldest.at) / 1000 : 0;
    return {
      sinceOpen: dollarsOf(this.usage),
      usage: this.usage,
      ownRequests: this.ownRequests,
      perMonth:
        oldest && newest && span > 0 ? ((newest.total - oldest.total) / span) * SECONDS_PER_MONTH : null,
      seconds: this.first && this.last ? (this.last.at - this.first.at) / 1000 : 0,
    };
  }
}
