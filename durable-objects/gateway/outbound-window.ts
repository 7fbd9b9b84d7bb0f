/**
 * The in-flight window of one connection's outbound QoS 1/2 messages, held in
 * memory so that sending and acknowledging need no query: which packet ids are
 * in flight (and the row and state of each), and how many stored messages wait
 * for room. Storage stays the truth for persistent sessions; the window is
 * loaded from it when a connection first needs it (after connect, or after the
 * object woke up).
 *
 * A clean session's messages, in flight or waiting for room, are held in memory
 * only until they have been there for a while (`Gateway.spillLater`): their
 * state matters only while the socket lives, the socket outlives the object's
 * memory only across hibernation, and an object with a timer set does not
 * hibernate. Most messages are acknowledged within milliseconds and never cost
 * a row.
 */
import type { Message } from "../../broker/message.ts";
import type { OutboundMessage, OutboundState } from "../../broker/session-state.ts";
import type { OutboundEntry } from "./store.ts";

interface InFlightBase {
  qos: 1 | 2;
  state: Exclude<OutboundState, "queued">;
}

/** A message in flight that has its row in the outbound table. */
export interface StoredInFlight extends InFlightBase {
  seq: number;
}

/** A clean session's message in flight, not written yet. */
export interface HeldInFlight extends InFlightBase {
  seq: null;
  /** What is written if it stays unacknowledged. */
  held: OutboundMessage;
  /** Epoch ms it was sent. */
  sentAt: number;
}

export type InFlight = StoredInFlight | HeldInFlight;

/** A clean session's message waiting for room, not written yet. */
export interface HeldWaiting {
  entry: OutboundMessage;
  /** Epoch ms it arrived. */
  since: number;
}

/** Writes an outbound message of this client; its row, or undefined if it was there already. */
export type WriteOutbound = (entry: OutboundMessage) => number | undefined;

/** Held messages beyond this many waiting for one client are written at once (bounded memory). */
export const MAX_HELD_WAITING = 1_000;

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
   * The next stored queued messages, read ahead of need: one query serves many
   * acknowledgements. They stay stored (and counted in `queued`) until sent.
   */
  readAhead: OutboundEntry[] = [];
  /**
   * No queued message has a row below this one: rows only ever leave the queued
   * state, and new rows get higher numbers (AUTOINCREMENT). Looking for queued
   * messages from here skips the in-flight rows before them.
   */
  queuedFrom = 0;
  /**
   * A clean session's messages waiting for room, held in memory only; they all
   * came after every stored queued message, so they are sent after those.
   */
  readonly waiting: HeldWaiting[] = [];
  /** How many entries of `inflight` are held in memory only. */
  private heldSent = 0;
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
   * once the caller puts it in the window with `add`.
   */
  freePacketId(): number | undefined {
    if (this.inflight.size >= 65535) return undefined;
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  /** Messages in flight held in memory only. */
  get heldInFlight(): number {
    return this.heldSent;
  }

  /** Messages held in memory only, in flight or waiting. */
  get held(): number {
    return this.heldSent + this.waiting.length;
  }

  /** Nothing waits for room: a new message may go straight out. */
  get idle(): boolean {
    return this.queued === 0 && this.waiting.length === 0;
  }

  /** The messages held in memory only, in flight or waiting. */
  heldMessages(): Message[] {
    const inflight = [...this.inflight.values()].flatMap((e) => (e.seq === null ? [e.held.message] : []));
    return [...inflight, ...this.waiting.map((w) => w.entry.message)];
  }

  add(packetId: number, entry: InFlight): void {
    this.inflight.set(packetId, entry);
    if (entry.seq === null) this.heldSent++;
  }

  /** The entry is acknowledged (or could not be sent); its row, if it has one, is the caller's to delete. */
  remove(packetId: number): InFlight | undefined {
    const entry = this.inflight.get(packetId);
    if (entry === undefined) return undefined;
    this.inflight.delete(packetId);
    if (entry.seq === null) this.heldSent--;
    return entry;
  }

  /**
   * Writes the held messages that have been held since before `before`: those
   * in flight one by one, those waiting all together once the oldest is due
   * (they must stay in order behind the stored ones). Returns when the oldest
   * message still held came, if any.
   */
  spill(before: number, write: WriteOutbound): number | undefined {
    let oldest: number | undefined;
    for (const [packetId, e] of this.inflight) {
      if (e.seq !== null) continue;
      if (e.sentAt >= before) {
        oldest = Math.min(oldest ?? e.sentAt, e.sentAt);
        continue;
      }
      const seq = write({ ...e.held, state: e.state, packetId });
      this.heldSent--;
      if (seq === undefined) this.inflight.delete(packetId);
      else this.inflight.set(packetId, { seq, qos: e.qos, state: e.state });
    }
    const first = this.waiting[0];
    if (first === undefined) return oldest;
    if (first.since < before) {
      this.spillWaiting(write);
      return oldest;
    }
    return Math.min(oldest ?? first.since, first.since);
  }

  /** Writes every held waiting message, in order, as stored queued ones. */
  spillWaiting(write: WriteOutbound): void {
    for (const w of this.waiting.splice(0)) if (write(w.entry) !== undefined) this.queued++;
  }
}
