/**
 * What a release's storage fixture holds (test/fixtures/storage/<release>/), made
 * with that release's code by `npm run fixture:storage -- <release>` and opened
 * by every later release in test/e2e/upgrade.test.ts (DESIGN.md invariant 8).
 * Written against a 1×1 broker; sessions that never expire.
 */
import { connect } from "./clients.ts";

/** Settings of the broker that writes the fixture: sessions kept as long as a client asks. */
export const FIXTURE_VARS = {
  ALLOW_ANONYMOUS: "true",
  MAX_SESSION_EXPIRY: "4294967295",
  SESSION_EXPIRY_DEFAULT: "4294967295",
};

/** Offline persistent sessions: a 5.0 one with two subscriptions, a 3.1.1 one with one. */
export const SESSION_5 = { clientId: "fixture-v5", filters: ["fixture/queued/#", "fixture/live/+"] };
export const SESSION_311 = { clientId: "fixture-v311", filters: ["fixture/queued/#"] };
/** QoS 1 messages published while both were offline, in this order. */
export const QUEUED = ["q1", "q2", "q3", "q4", "q5"];
/** Retained messages, one with a user property. */
export const RETAINED = [
  { topic: "fixture/retained/a", payload: "alpha", userProperties: { unit: "C" } },
  { topic: "fixture/retained/b", payload: "beta", userProperties: undefined },
];

export async function writeFixture(url: string): Promise<void> {
  const v5 = await connect(url, {
    protocolVersion: 5,
    clientId: SESSION_5.clientId,
    clean: false,
    // 0xFFFFFFFF: the session does not expire (5.0 3.1.2.11.2).
    properties: { sessionExpiryInterval: 0xffffffff },
  });
  for (const f of SESSION_5.filters) await v5.subscribeAsync(f, { qos: 1 });
  await v5.endAsync();
  const v311 = await connect(url, { protocolVersion: 4, clientId: SESSION_311.clientId, clean: false });
  for (const f of SESSION_311.filters) await v311.subscribeAsync(f, { qos: 1 });
  await v311.endAsync();

  const pub = await connect(url, { protocolVersion: 5, clientId: "fixture-publisher" });
  for (const [i, payload] of QUEUED.entries())
    await pub.publishAsync(`fixture/queued/${i}`, payload, { qos: 1 });
  for (const r of RETAINED) {
    await pub.publishAsync(r.topic, r.payload, {
      qos: 1,
      retain: true,
      properties: r.userProperties === undefined ? {} : { userProperties: r.userProperties },
    });
  }
  await pub.endAsync();
}
