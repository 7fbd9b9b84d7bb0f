/**
 * The one door out (durable-objects/gateway/closer.ts) carries out the close
 * table: a 5.0 client gets DISCONNECT only once it has its CONNACK
 * (MQTT-3.14.0-1), whatever ends the connection: an operator's kick while the
 * CONNECT is still being accepted included.
 */
import { describe, expect, it } from "vitest";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { TokenBucket } from "../../broker/rate-limit.ts";
import { Closer } from "../../durable-objects/gateway/closer.ts";
import { type Attachment, Connection } from "../../durable-objects/gateway/connection.ts";
import { ConnectionInbound, decodeAheadOf, INBOUND_LIMITS } from "../../durable-objects/gateway/inbound.ts";
import { aliasBudgets } from "../../durable-objects/gateway/topic-aliases.ts";
import type { Packet } from "../../mqtt/index.ts";

function harness(version: 4 | 5, ready: boolean) {
  const att: Attachment = {
    phase: "connected",
    openedAt: 0,
    clientId: "c",
    connId: "x",
    version,
    keepAlive: 0,
    persistent: false,
    expiry: 0,
    lastSeen: 0,
  };
  const socket = { serializeAttachment() {} } as unknown as WebSocket;
  const conn = new Connection(
    socket,
    att,
    1024,
    (c) => new ConnectionInbound(c, new TokenBucket(1, 1), { release() {} }, decodeAheadOf(INBOUND_LIMITS)),
    aliasBudgets(),
  );
  conn.ready = ready;
  const sent: Packet[] = [];
  const closed: number[] = [];
  const ended: string[] = [];
  const closer = new Closer({
    wire: { send: (_c, p) => sent.push(p), closeSocket: (_c, code) => closed.push(code) },
    end: async (c, how) => {
      c.detach();
      ended.push(how);
    },
    name: () => "gw",
    config: { presence: { enabled: false, address: false } },
    identity: () => undefined,
    publish: async () => undefined,
    waitUntil: () => {},
  });
  return { conn, closer, sent, closed, ended };
}

describe("the one door out", () => {
  const kick: CloseReason = { kind: "administrator", reasonCode: 0x98 };

  it("a kick before CONNACK sends no DISCONNECT (MQTT-3.14.0-1): only the close frame, and the session leaves with its will", async () => {
    const h = harness(5, false);
    await h.closer.close(h.conn, kick);
    expect(h.sent).toEqual([]);
    expect(h.closed).toEqual([1000]);
    expect(h.ended).toEqual(["abnormal"]);
  });

  it("after CONNACK a 5.0 client gets DISCONNECT 0x98 first", async () => {
    const h = harness(5, true);
    await h.closer.close(h.conn, kick);
    expect(h.sent).toEqual([{ type: "disconnect", reasonCode: 0x98 }]);
  });

  it("3.1.1 has no server DISCONNECT: the socket closes", async () => {
    const h = harness(4, true);
    await h.closer.close(h.conn, { kind: "shutdown", reasonCode: 0x8b });
    expect([h.sent, h.closed]).toEqual([[], [1001]]);
  });

  it("3.1.1 learns why from the close code alone: 1013 for Server busy, 1008 for a client past its bounds, 1011 for a fault of ours", async () => {
    const codes: number[] = [];
    for (const reason of [
      { kind: "protocol-error", reasonCode: 0x89, why: "busy" },
      { kind: "protocol-error", reasonCode: 0x96, why: "most waiting" },
      { kind: "protocol-error", reasonCode: 0x93, why: "over Receive Maximum" },
      { kind: "internal-error", detail: "stack" },
    ] as const) {
      const h = harness(4, true);
      await h.closer.close(h.conn, reason);
      expect(h.sent).toEqual([]);
      codes.push(...h.closed);
    }
    expect(codes).toEqual([1013, 1008, 1002, 1011]);
  });

  it("ends a connection once: a second reason finds it finished and does nothing", async () => {
    const h = harness(5, true);
    await h.closer.close(h.conn, { kind: "keep-alive" });
    await h.closer.close(h.conn, kick);
    expect(h.sent).toEqual([{ type: "disconnect", reasonCode: 0x8d }]);
    expect(h.ended).toEqual(["abnormal"]);
  });

  it("a takeover says goodbye (0x8E) without ending the session here: it moved", async () => {
    const h = harness(5, true);
    expect(h.closer.farewell(h.conn, { kind: "taken-over" })).toBe("moved");
    expect(h.sent).toEqual([{ type: "disconnect", reasonCode: 0x8e }]);
    expect(h.ended).toEqual([]);
  });
});
