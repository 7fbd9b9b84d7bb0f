/**
 * The in-flight window of one connection's outbound QoS 1/2 messages, held in
 * memory so that sending and acknowledging need no query: which packet ids are
 * in flight (and the row and state of each), and how many stored messages wait
 * for room. Storage stays the truth; the window is loaded from it when a
 * connection first needs it (after connect, or after the object woke up).
 */
import type { OutboundState } from "../../broker/session-state.ts";

export interface InFlight {
  /** The message's row in the outbound table. */
  seq: number;
  qos: 1 | 2;
  state: Exclude<OutboundState, "queued">;
}

/** What the window needs of a stored outbound message. */
export interface OutboundRow {
  seq: number;
  packetId: number | null;
  state: OutboundState;
  qos: number;
}

export class OutboundWindow {
  /** Packet id → the message sent with it and not yet acknowledged. */
  readonly inflight: Map<number, InFlight>;
  /** Stored messages not sent yet (waiting for room in the window). */
  queued: number;
  /**
   * No queued message has a row below this one: rows only ever leave the queued
   * state, and new rows get higher numbers (AUTOINCREMENT). Looking for queued
   * messages from here skips the in-flight rows before them.
   */
  queuedFrom = 0;
  private nextId = 1;

  /** The window of a client whose stored outbound messages are `rows`. */
  constructor(rows: Iterable<OutboundRow>) {
    this.inflight = new Map();
    this.queued = 0;
    for (const r of rows) {
      if (r.state === "queued" || r.packetId === null) this.queued++;
      else this.inflight.set(r.packetId, { seq: r.seq, qos: r.qos as 1 | 2, state: r.state });
    }
  }

  /**
   * A packet identifier not in use for this client (MQTT-2.3.1-2); it is taken
   * once the caller puts it in `inflight`.
   */
  freePacketId(): number | undefined {
    if (this.inflight.size >= 65535) return undefined;
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }
}
