/**
 * What the operator view keeps of each /api/stats answer, and the rates between
 * two of them. Counters are sums over every gateway and shard, kept in memory and
 * written at most every 5 s, so an object that restarts can lose its last seconds
 * of counts (README, "HTTP API and metrics"): a counter that went down between two
 * readings counts as no growth, never as a negative rate.
 */
import type { Billing } from "../../broker/billing.ts";

/**
 * The part of GET /api/stats's answer (broker/stats.ts, BrokerStats) the view reads;
 * test/unit/console-operator.test.ts checks that BrokerStats still has it.
 */
export interface StatsAnswer {
  messagesIn: number;
  messagesOut: number;
  connections: number;
  billing: Billing;
  gateways: unknown[];
  shards: unknown[];
}

export interface Reading {
  /** When the answer arrived, ms (performance.now() or Date.now(): only differences are used). */
  at: number;
  messagesIn: number;
  messagesOut: number;
  connections: number;
  billing: Billing;
  /** Gateways and shards that answered: each /api/stats call is one billed request to each. */
  objects: number;
}

export function readingOf(stats: StatsAnswer, at: number): Reading {
  return {
    at,
    messagesIn: stats.messagesIn,
    messagesOut: stats.messagesOut,
    connections: stats.connections,
    billing: { ...stats.billing },
    objects: stats.gateways.length + stats.shards.length,
  };
}

/** How much a counter grew; 0 when it went down (counts lost in a restart). */
export function growth(from: number, to: number): number {
  return to > from ? to - from : 0;
}

export interface Rates {
  inPerSecond: number;
  outPerSecond: number;
}

/** Messages a second between two readings (0 when they are not apart in time). */
export function ratesBetween(a: Reading, b: Reading): Rates {
  const seconds = (b.at - a.at) / 1000;
  if (!(seconds > 0)) return { inPerSecond: 0, outPerSecond: 0 };
  return {
    inPerSecond: growth(a.messagesIn, b.messagesIn) / seconds,
    outPerSecond: growth(a.messagesOut, b.messagesOut) / seconds,
  };
}

export function billingGrowth(from: Billing, to: Billing): Billing {
  return {
    requests: growth(from.requests, to.requests),
    wsMessagesIn: growth(from.wsMessagesIn, to.wsMessagesIn),
    rowsWritten: growth(from.rowsWritten, to.rowsWritten),
    logLines: growth(from.logLines, to.logLines),
  };
}
