/**
 * A Session's queue moving to and from a gateway a page at a time, driven
 * directly over RPC inside workerd, so that the client can be made to leave at
 * an exact point: after its gateway took the first page and before it asked for
 * the rest.
 */
import { env } from "cloudflare:workers";

import { describe, expect, it } from "vitest";

import type { Message } from "../../broker/message.ts";

import { emptyPage, type OutboundMessage, type OutboundPage } from "../../broker/session-state.ts";
import type { ClaimResult, SessionRpc } from "../../durable-objects/contracts.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;
const GATEWAY = "queue-test-gw";
const subscription = { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 } as const;

function session(clientId: string): SessionRpc {
  return bindings.SESSION.get(bindings.SESSION.idFromName(clientId)) as unknown as SessionRpc;
}

const claim = (clientId: string, connId: string) => ({
  clientId,
  owner: "anonymous",
  gateway: GATEWAY,
  connId,
  cleanStart: false,
  persistent: true,
  expiry: 3600,
});

function message(n: number): Message {
  return { id: `m${n}`, topic: "queue/t", payload: new Uint8Array([n % 256]), qos: 1, retain: false };
}

/** Every message of the queue from the Session, page by page, as a gateway takes them. */
async function takeAll(s: SessionRpc, connId: string, first: OutboundPage): Promise<OutboundMessage[]> {
  const all: OutboundMessage[] = [];
  let page = first;
  for (;;) {
    all.push(...page.entries);
    if (page.entries.length === 0 && !page.more) return all;
    page = (await s.queuedPage(connId, page.through)).result;
  }
}

/** A Session whose client subscribed to queue/# (QoS 1) on conn-a, and left. */
async function offline(clientId: string): Promise<SessionRpc> {
  const s = session(clientId);
  await s.claim(claim(clientId, "conn-a"));
  await s.park(
    GATEWAY,
    "conn-a",
    {
      subscriptions: [{ filter: "queue/#", options: subscription }],
      outbound: emptyPage(),
      inboundQos2: [],
    },
    3600,
  );
  return s;
}

describe("a Session's queue, a page at a time", () => {
  it("a client that leaves after its gateway took the first page gets the whole queue back, in order, the gateway's state kept", async () => {
    const clientId = "queue-leaver";
    const s = await offline(clientId);
    // 600 queued while offline: more than one page (500 messages a call).
    await s.enqueue(Array.from({ length: 300 }, (_, i) => message(i)));
    await s.enqueue(Array.from({ length: 300 }, (_, i) => message(300 + i)));

    const back = (await s.claim(claim(clientId, "conn-b"))).result as Extract<ClaimResult, { granted: true }>;
    expect(back.sessionPresent).toBe(true);
    const first = back.state.outbound;
    expect(first.entries).toHaveLength(500);
    expect(first.more).toBe(true);
    // The gateway stored the first page and sent the first message; the client
    // leaves before the gateway asked for more: the gateway hands back its rows.
    const atGateway = first.entries.map((e, i) =>
      i === 0 ? { ...e, state: "sent" as const, packetId: 7 } : e,
    );
    await s.park(
      GATEWAY,
      "conn-b",
      {
        subscriptions: [{ filter: "queue/#", options: subscription }],
        outbound: { entries: atGateway, through: 500, more: false },
        inboundQos2: [],
      },
      3600,
    );

    const again = (await s.claim(claim(clientId, "conn-c"))).result as Extract<
      ClaimResult,
      { granted: true }
    >;
    const all = await takeAll(s, "conn-c", again.state.outbound);
    expect(all.map((e) => e.message.id)).toEqual(Array.from({ length: 600 }, (_, i) => `m${i}`));
    // The gateway's row, not the Session's older copy: sent, with its packet id (MQTT-4.4.0-1).
    expect(all[0]).toMatchObject({ state: "sent", packetId: 7 });
    expect(all.slice(1).every((e) => e.state === "queued")).toBe(true);
    expect((await s.drop()).result).toBe(true);
  });

  it("a live message for a client whose queue is still coming is kept while the rows not yet handed out leave room (MAX_QUEUED_MESSAGES counts only those)", async () => {
    // MAX_QUEUED_MESSAGES is 1000 here (its default): the offline client's queue is full.
    const max = 1000;
    const clientId = "queue-live-behind-backlog";
    const s = await offline(clientId);
    for (let i = 0; i < max; i += 250) await s.enqueue(Array.from({ length: 250 }, (_, j) => message(i + j)));
    // Over the bound while offline: the newest is dropped.
    await s.enqueue([message(max)]);
    expect((await s.info()).result?.queued).toBe(max);

    // The client is back: its gateway has the first page (500 rows, still stored
    // here until it asks for the next). The test's gateway does not know the
    // client, so it refuses live messages as a gateway does while the client's
    // queue is still coming (Connection.backlog): the Session queues them.
    const back = (await s.claim(claim(clientId, "conn-b"))).result as Extract<ClaimResult, { granted: true }>;
    const first = back.state.outbound;
    expect(first.entries).toHaveLength(500);
    const live = (n: number) => ({ message: message(n), subscriptionIds: [] });
    // 500 rows wait here not yet handed out: room for 500 more, the last dropped.
    await s.append([live(2000)]);
    await s.append(Array.from({ length: 500 }, (_, i) => live(2001 + i)));

    const rest = await takeAll(s, "conn-b", (await s.switched("conn-b", first.through)).result);
    const ids = [...first.entries, ...rest].map((e) => e.message.id);
    expect(ids).toHaveLength(max + 500);
    expect(ids).toEqual([
      ...Array.from({ length: max }, (_, i) => `m${i}`),
      ...Array.from({ length: 500 }, (_, i) => `m${2000 + i}`),
    ]);
    expect((await s.drop()).result).toBe(true);
  });
});

describe("messages its gateway holds back behind a queue still on its way", () => {
  it("are queued at once, not offered back to that gateway (no hop gateway → Session → gateway → Session)", async () => {
    const clientId = "held-back";
    const s = await offline(clientId);
    // The client is back on conn-b: online at GATEWAY, its queue not taken yet.
    await s.claim(claim(clientId, "conn-b"));
    const gateway = bindings.GATEWAY.get(bindings.GATEWAY.idFromName(GATEWAY));
    const calls = async () => (await gateway.stats()).counters.rpc_in ?? 0;
    const before = await calls();
    const entries = [{ message: message(1), subscriptionIds: [] }];
    await s.append(entries, "conn-b");
    // Our own stats call only: the Session did not call the gateway's deliverTo.
    expect((await calls()) - before).toBe(1);
    const page = (await s.switched("conn-b", 0)).result;
    expect((await takeAll(s, "conn-b", page)).map((e) => e.message.id)).toContain("m1");
    // Without heldBy (a gateway the client left), the Session offers them to its gateway first.
    const again = await calls();
    await s.append([{ message: message(2), subscriptionIds: [] }]);
    expect((await calls()) - again).toBe(2);
  });
});
