/**
 * The operator view's arithmetic (console/operator/): rates between two /api/stats
 * readings, the cost meter's dollars, and the chart's scale. The browser side is
 * test/e2e/console.test.ts.
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import type { Billing } from "../../broker/billing.ts";
import type { BrokerStats } from "../../broker/stats.ts";
import type { ClientInfo } from "../../console/operator/api.ts";
import { CostMeter, dollarsOf, SECONDS_PER_MONTH } from "../../console/operator/cost.ts";
import { type Reading, ratesBetween, type StatsAnswer } from "../../console/operator/readings.ts";
import { niceCeiling } from "../../console/operator/scale.ts";
import type { SessionInfo } from "../../durable-objects/contracts.ts";

const billing = (requests: number, wsMessagesIn = 0, rowsWritten = 0, logLines = 0): Billing => ({
  requests,
  wsMessagesIn,
  rowsWritten,
  logLines,
});

const reading = (at: number, b: Billing, messagesIn = 0, messagesOut = 0): Reading => ({
  at,
  messagesIn,
  messagesOut,
  connections: 0,
  billing: b,
  objects: 2,
});

describe("operator view", () => {
  it("reads what /api/stats answers (BrokerStats still has every field the view reads)", () => {
    expectTypeOf<BrokerStats>().toExtend<StatsAnswer>();
    // GET /api/clients/{id} answers a SessionInfo, which the console cannot import (Workers types).
    expectTypeOf<SessionInfo>().toEqualTypeOf<ClientInfo>();
  });

  it("prices each billed kind at its list price", () => {
    const d = dollarsOf(billing(1e6, 20e6, 1e6, 1e6));
    // $0.15 a million requests, 20 WebSocket messages to a request, $1.00 a million rows, $0.60 a million lines
    expect(d.requests).toBeCloseTo(0.15, 10);
    expect(d.wsMessages).toBeCloseTo(0.15, 10);
    expect(d.rowsWritten).toBeCloseTo(1.0, 10);
    expect(d.logLines).toBeCloseTo(0.6, 10);
    expect(d.total).toBeCloseTo(1.9, 10);
  });

  it("rates messages a second between readings, and never below zero", () => {
    expect(ratesBetween(reading(0, billing(0), 100, 300), reading(2000, billing(0), 160, 500))).toEqual({
      inPerSecond: 30,
      outPerSecond: 100,
    });
    // A gateway restarted and lost its last seconds of counts: no growth, not a negative rate.
    expect(ratesBetween(reading(0, billing(0), 100, 300), reading(1000, billing(0), 90, 250))).toEqual({
      inPerSecond: 0,
      outPerSecond: 0,
    });
    expect(ratesBetween(reading(5, billing(0), 1, 1), reading(5, billing(0), 9, 9))).toEqual({
      inPerSecond: 0,
      outPerSecond: 0,
    });
  });

  it("counts from the first reading on, with the page's own polling among it", () => {
    const meter = new CostMeter();
    meter.add(reading(0, billing(1_000_000)));
    expect(meter.report().sinceOpen.total).toBe(0);
    expect(meter.report().perMonth).toBeNull();
    meter.add(reading(3000, billing(1_000_100, 2000)));
    const r = meter.report();
    expect(r.usage).toEqual(billing(100, 2000));
    expect(r.ownRequests).toBe(2);
    expect(r.sinceOpen.total).toBeCloseTo((100 + 2000 / 20) * 0.15e-6, 15);
    expect(r.seconds).toBe(3);
    // $30e-6 in 3 s is $10e-6 a second.
    expect(r.perMonth).toBeCloseTo(10e-6 * SECONDS_PER_MONTH, 9);
  });

  it("loses counts an object lost in a restart instead of subtracting them", () => {
    const meter = new CostMeter();
    meter.add(reading(0, billing(1000, 0, 500)));
    meter.add(reading(1000, billing(400, 0, 600)));
    meter.add(reading(2000, billing(700, 0, 600)));
    expect(meter.report().usage).toEqual(billing(300, 0, 100));
  });

  it("gives the rate of the last minute, not the average since the page opened", () => {
    const meter = new CostMeter(60_000);
    // A busy first minute, then quiet: one request a second (the page's polling and little else).
    let requests = 0;
    for (let t = 0; t <= 180; t += 3) {
      requests += t <= 60 ? 30_000 : 3;
      meter.add(reading(t * 1000, billing(requests)));
    }
    const r = meter.report();
    expect(r.perMonth).toBeCloseTo(1 * 0.15e-6 * SECONDS_PER_MONTH, 6);
    expect(r.sinceOpen.total).toBeGreaterThan(0.09);
  });

  it("keeps the rate window bounded however long the page stays open", () => {
    const meter = new CostMeter(60_000);
    for (let t = 0; t < 100_000; t++) meter.add(reading(t * 3000, billing(t)));
    // 21 readings 3 s apart span the minute; a few more than that at most.
    expect(meter.readingsKept).toBeLessThanOrEqual(22);
  });

  it("scales a chart to 1, 2 or 5 times a power of ten", () => {
    expect([0, 0.3, 1, 1.5, 3, 7, 10, 11, 49, 50, 51, 999].map(niceCeiling)).toEqual([
      0, 0.5, 1, 2, 5, 10, 10, 20, 50, 50, 100, 1000,
    ]);
  });
});
