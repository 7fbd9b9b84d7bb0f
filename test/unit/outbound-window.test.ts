import { describe, expect, it } from "vitest";
import type { Message } from "../../broker/message.ts";
import type { OutboundMessage } from "../../broker/session-state.ts";
import { OutboundWindow } from "../../durable-objects/gateway/outbound-window.ts";

const message = (id: string): Message => ({
  id,
  topic: "t",
  payload: new Uint8Array(0),
  qos: 1,
  retain: false,
});
const entry = (id: string): OutboundMessage => ({
  message: message(id),
  subscriptionIds: [],
  state: "queued",
  packetId: null,
});

/** Sends `id` as a held (unwritten) message with `packetId` at `sentAt`. */
function holdSent(w: OutboundWindow, packetId: number, id: string, sentAt: number): void {
  w.add(packetId, {
    seq: null,
    qos: 1,
    state: "sent",
    held: { ...entry(id), state: "sent", packetId },
    sentAt,
  });
}

/** A stand-in for the outbound table: rows in the order written. */
function table() {
  const rows: OutboundMessage[] = [];
  const write = (e: OutboundMessage) => rows.push(e) - 1 + 100;
  return { rows, write };
}

describe("OutboundWindow", () => {
  it("is rebuilt from stored rows: queued ones counted, sent ones in flight by packet id", () => {
    const w = new OutboundWindow([
      { seq: 1, packetId: 7, state: "sent", qos: 1 },
      { seq: 2, packetId: 8, state: "released", qos: 2 },
      { seq: 3, packetId: null, state: "queued", qos: 1 },
    ]);
    expect(w.queued).toBe(1);
    expect([...w.inflight.keys()]).toEqual([7, 8]);
    expect(w.held).toBe(0);
    expect(w.idle).toBe(false);
  });

  it("never hands out a packet id in flight (MQTT-2.3.1-2)", () => {
    const w = new OutboundWindow([{ seq: 1, packetId: 1, state: "sent", qos: 1 }]);
    const id = w.freePacketId() as number;
    expect(id).toBe(2);
    holdSent(w, id, "a", 0);
    expect(w.freePacketId()).toBe(3);
  });

  it("counts held messages in flight and waiting, and forgets them when acknowledged", () => {
    const w = new OutboundWindow([]);
    holdSent(w, 1, "a", 0);
    w.waiting.push({ entry: entry("b"), since: 0 });
    expect([w.heldInFlight, w.held, w.idle]).toEqual([1, 2, false]);
    expect(w.heldMessages().map((m) => m.id)).toEqual(["a", "b"]);
    expect(w.remove(1)?.seq).toBeNull();
    expect([w.heldInFlight, w.held]).toEqual([0, 1]);
  });

  it("writes held messages in flight once due, keeping their packet id and state", () => {
    const w = new OutboundWindow([]);
    holdSent(w, 1, "old", 1_000);
    holdSent(w, 2, "new", 5_000);
    const { rows, write } = table();
    expect(w.spill(2_000, write)).toBe(5_000); // the oldest still held
    expect(rows).toEqual([{ ...entry("old"), state: "sent", packetId: 1 }]);
    expect(w.inflight.get(1)).toEqual({ seq: 100, qos: 1, state: "sent" });
    expect(w.inflight.get(2)?.seq).toBeNull();
    expect(w.heldInFlight).toBe(1);
  });

  it("writes waiting messages all together and in order once the oldest is due (MQTT 4.6)", () => {
    const w = new OutboundWindow([]);
    w.waiting.push({ entry: entry("m1"), since: 1_000 }, { entry: entry("m2"), since: 9_000 });
    const { rows, write } = table();
    expect(w.spill(500, write)).toBe(1_000);
    expect(rows).toEqual([]);
    expect(w.spill(2_000, write)).toBeUndefined();
    expect(rows.map((r) => r.message.id)).toEqual(["m1", "m2"]);
    expect([w.queued, w.held]).toEqual([2, 0]);
  });

  it("drops a held message that storage already has (a duplicate)", () => {
    const w = new OutboundWindow([]);
    holdSent(w, 1, "dup", 0);
    expect(w.spill(1, () => undefined)).toBeUndefined();
    expect(w.inflight.size).toBe(0);
    expect(w.held).toBe(0);
  });
});
