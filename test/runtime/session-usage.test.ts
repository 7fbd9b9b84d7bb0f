/**
 * Sessions keep no counters (one object per client id, never polled): each answer
 * carries the rows the Session wrote since its last one, for the caller to count
 * in the cost model.
 */
import { env } from "cloudflare:workers";

import { describe, expect, it } from "vitest";

import { messageProperties } from "../../broker/message.ts";

import { emptyPage } from "../../broker/session-state.ts";
import type { SessionRpc } from "../../durable-objects/contracts.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;
const session = (clientId: string) =>
  bindings.SESSION.get(bindings.SESSION.idFromName(clientId)) as unknown as SessionRpc;

const claim = (clientId: string, persistent: boolean) => ({
  clientId,
  owner: "anonymous",
  gateway: "usage-gw",
  connId: `${clientId}-conn`,
  cleanStart: true,
  persistent,
  expiry: persistent ? 60 : 0,
});

describe("Session usage reports", () => {
  it("a clean session writes its record at connect and deletes it at the end: one row each", async () => {
    const s = session("usage-clean");
    const claimed = await s.claim(claim("usage-clean", false));
    expect(claimed.result).toMatchObject({ granted: true, sessionPresent: false });
    expect(claimed.usage).toEqual({ rowsWritten: 1, alarms: 0 });
    expect((await s.close("usage-clean-conn")).usage).toEqual({ rowsWritten: 1, alarms: 0 });
  });

  it("an offline persistent session reports the rows of the messages it queues", async () => {
    const s = session("usage-offline");
    await s.claim(claim("usage-offline", true));
    const subscription = { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 } as const;
    const parked = await s.park(
      "usage-gw",
      "usage-offline-conn",
      {
        subscriptions: [{ filter: "usage/#", options: subscription }],
        outbound: emptyPage(),
        inboundQos2: [],
      },
      60,
    );
    expect(parked.usage.rowsWritten).toBeGreaterThanOrEqual(2); // the subscription and the record
    const message = {
      id: "usage-m1",
      topic: "usage/a",
      payload: new Uint8Array([1]),
      qos: 1 as const,
      retain: false,
      properties: messageProperties(undefined),
    };
    const queued = await s.enqueue([message]);
    // As SQLite counts them: the queue row, its msg_id index entry (UNIQUE), and
    // AUTOINCREMENT's row in sqlite_sequence.
    expect(queued.usage).toEqual({ rowsWritten: 3, alarms: 0 });
    expect((await s.info()).result?.queued).toBe(1);
    expect((await s.drop()).result).toBe(true);
  });
});
