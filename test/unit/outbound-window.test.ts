import { describe, expect, it } from "vitest";
import type { Message } from "../../broker/message.ts";
import type { OutboundMessage } from "../../broker/session-state.ts";
import { HeldBudget, OutboundWindow } from "../../durable-objects/gateway/outbound-window.ts";

const message = (id: string, payloadBytes = 0): Message => ({
  id,
  topic: "t",
  payload: new Uint8Array(payloadBytes),
  qos: 1,
  retain: false,
});
const entry = (id: string, payloadBytes = 0): OutboundMessage => ({
  message: message(id, payloadBytes),
  subscriptionIds: [],
  state: "queued",
  packetId: null,
});

const unbounded = () => new HeldBudget(Number.POSITIVE_INFINITY);

/** A stand-in for the outbound table: rows in the order written, row numbers from 100. */
function table() {
  const rows: OutboundMessage[] = [];
  const write = (e: OutboundMessage) => rows.push(e) - 1 + 100;
  return { rows, write };
}

describe("OutboundWindow", () => {
  it("is rebuilt from stored rows: queued ones counted, sent ones in flight by packet id", () => {
    const w = new OutboundWindow(
      [
        { seq: 1, packetId: 7, state: "sent", qos: 1 },
        { seq: 2, packetId: 8, state: "released", qos: 2 },
        { seq: 3, packetId: null, state: "queued", qos: 1 },
      ],
      unbounded(),
    );
    expect(w.queued).toBe(1);
    expect([...w.inflight.keys()]).toEqual([7, 8]);
    expect(w.held).toBe(0);
    expect(w.idle).toBe(false);
  });

  it("never hands out a packet id in flight (MQTT-2.3.1-4; 5.0 MQTT-2.2.1-4)", () => {
    const w = new OutboundWindow([{ seq: 1, packetId: 1, state: "sent", qos: 1 }], unbounded());
    const id = w.freePacketId() as number;
    expect(id).toBe(2);
    w.hold(id, entry("a"), 0);
    expect(w.freePacketId()).toBe(3);
  });

  it("counts held messages in flight and waiting, and forgets them when acknowledged", () => {
    const w = new OutboundWindow([], unbounded());
    w.hold(1, entry("a"), 5);
    w.wait(entry("b"), 6);
    expect([w.heldInFlight, w.held, w.idle, w.activeAt]).toEqual([1, 2, false, 5]);
    expect(w.heldMessages().map((m) => m.id)).toEqual(["a", "b"]);
    expect(w.remove(1)?.seq).toBeNull();
    expect([w.heldInFlight, w.held]).toEqual([0, 1]);
    expect(w.nextWaiting()?.message.id).toBe("b");
    expect(w.held).toBe(0);
  });

  it("writes held messages in flight with their packet id and state, and waiting ones in order (MQTT 4.6)", () => {
    const w = new OutboundWindow([], unbounded());
    w.hold(1, entry("sent"), 0);
    w.wait(entry("m1"), 0);
    w.wait(entry("m2"), 0);
    const { rows, write } = table();
    w.spill(write);
    expect(rows.map((r) => [r.message.id, r.state, r.packetId])).toEqual([
      ["sent", "sent", 1],
      ["m1", "queued", null],
      ["m2", "queued", null],
    ]);
    expect(w.inflight.get(1)).toEqual({ seq: 100, qos: 1, state: "sent" });
    expect([w.held, w.queued]).toEqual([0, 2]);
  });

  it("gives waiting messages back in the order they came, however many (MQTT 4.6)", () => {
    const w = new OutboundWindow([], unbounded());
    const taken: string[] = [];
    for (let i = 0; i < 5000; i++) {
      w.wait(entry(`m${i}`), 0);
      if (i % 3 === 0) taken.push((w.nextWaiting() as OutboundMessage).message.id);
    }
    for (let e = w.nextWaiting(); e !== undefined; e = w.nextWaiting()) taken.push(e.message.id);
    expect(taken).toEqual(Array.from({ length: 5000 }, (_, i) => `m${i}`));
    expect(w.held).toBe(0);
  });

  it("drops a held message that storage already has (a duplicate)", () => {
    const w = new OutboundWindow([], unbounded());
    w.hold(1, entry("dup"), 0);
    w.spill(() => undefined);
    expect(w.inflight.size).toBe(0);
    expect(w.held).toBe(0);
  });

  it("holds no more than the gateway's budget, shared by its windows, and gives it back", () => {
    const budget = new HeldBudget(2 * (1 + 1000 + 256));
    const a = new OutboundWindow([], budget);
    const b = new OutboundWindow([], budget);
    expect(a.hold(1, entry("a1", 1000), 0)).toBe(true);
    expect(b.wait(entry("b1", 1000), 0)).toBe(true);
    expect(a.wait(entry("a2", 1000), 0)).toBe(false); // spent: the caller stores it
    a.remove(1);
    expect(a.wait(entry("a2", 1000), 0)).toBe(true);
    b.discardHeld();
    a.spill(table().write);
    expect(budget.used).toBe(0);
  });
});
