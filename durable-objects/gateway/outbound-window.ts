/**
 * The in-flight window of one connection's outbound QoS 1/2 messages, held in
 * memory so that sending and acknowledging need no query: which packet ids are
 * in flight (and the row and state of each), and how many stored messages wait
 * for room. Storage stays the truth for persistent sessions; the window is
 * loaded from it when a connection first needs it (after connect, or after the
 * object woke up).
 *
 * A clean session's messages, in flight or waiting for room, are held in memory
 * only, until the client has acknowledged nothing for a while (then they are
 * written: `Gateway.spillLater`) or the gateway's budget for held messages is
 * spent: their state matters only while the socket lives, the socket outlives
 * the object's memory only across hibernation, and an object with a timer set
 * does not hibernate. A client that keeps acknowledging never costs a row.
 */
import type { Message } from "../../broker/message.ts";
import type { OutboundMessage, OutboundState } from "../../broker/session-state.ts";
import type { OutboundEntry } from "./outbound-rows.ts";

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
}

export type InFlight = StoredInFlight | HeldInFlight;

/** Writes an outbound message of this client; its row, or undefined if it was there already. */
export type WriteOutbound = (entry: OutboundMessage) => number | undefined;

/** What a held message is taken to weigh in memory beyond its topic and payload. */
const HELD_OVERHEAD_BYTES = 256;

/** What a held message is taken to weigh against the HeldBudget. */
export const heldWeight = (m: Message): number => m.topic.length + m.payload.length + HELD_OVERHEAD_BYTES;

/** Memory that the held messages of one gateway's windows may take together. */
export class HeldBudget {
  used = 0;
  /**
   * The bound (bytes as `heldWeight` counts them). Settable: a test lowers it on
   * a live gateway to reach it with a few messages (test/runtime/held-budget.test.ts).
   */
  max: number;

  constructor(max: number) {
    this.max = max;
  }

  take(m: Message): boolean {
    const w = heldWeight(m);
    if (this.used + w > this.max) return false;
    this.used += w;
    return true;
  }

  give(m: Message): void {
    this.used -= heldWeight(m);
  }
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
   * A clean session's messages waiting for room, held in memory only, from
   * `waitingHead` on (a queue: taking the oldest must not move the rest); they
   * all came after every stored queued message, so they are sent after those.
   */
  private waiting: Array<OutboundMessage | undefined> = [];
  private waitingHead = 0;
  /**
   * When the client last made progress: acknowledged a message, or got its first
   * held one. Held messages are written once it has been quiet for a while.
   */
  activeAt = 0;
  /** How many entries of `inflight` are held in memory only. */
  private heldSent = 0;
  private nextId = 1;
  private readonly budget: HeldBudget;

  /** The window of a client whose stored outbound messages are `rows`. */
  constructor(rows: Iterable<OutboundRow>, budget: HeldBudget) {
    this.budget = budget;
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
    return this.heldSent + this.waitingCount;
  }

  /** Nothing waits for room: a new message may go straight out. */
  get idle(): boolean {
    return this.queued === 0 && this.waitingCount === 0;
  }

  /** Held messages waiting for room. */
  get waitingCount(): number {
    return this.waiting.length - this.waitingHead;
  }

  /** The messages held in memory only, in flight or waiting. */
  heldMessages(): Message[] {
    const inflight = [...this.inflight.values()].flatMap((e) => (e.seq === null ? [e.held.message] : []));
    return [...inflight, ...this.heldWaiting().map((e) => e.message)];
  }

  /** A stored message goes in flight with `packetId`. */
  add(packetId: number, entry: StoredInFlight): void {
    this.inflight.set(packetId, entry);
  }

  /** A clean session's message goes in flight held in memory; false if the budget is spent. */
  hold(packetId: number, entry: OutboundMessage, now: number): boolean {
    if (!this.budget.take(entry.message)) return false;
    if (this.held === 0) this.activeAt = now;
    const held: OutboundMessage = { ...entry, state: "sent", packetId };
    this.inflight.set(packetId, {
      seq: null,
      qos: entry.message.qos as 1 | 2,
      state: "sent",
      held,
    });
    this.heldSent++;
    return true;
  }

  /** A clean session's message waits for room, held in memory; false if the budget is spent. */
  wait(entry: OutboundMessage, now: number): boolean {
    if (!this.budget.take(entry.message)) return false;
    if (this.held === 0) this.activeAt = now;
    this.waiting.push(entry);
    return true;
  }

  /** The oldest held waiting message, taken out of the window. */
  nextWaiting(): OutboundMessage | undefined {
    if (this.waitingCount === 0) return undefined;
    const entry = this.waiting[this.waitingHead] as OutboundMessage;
    this.waiting[this.waitingHead++] = undefined;
    // Drop the taken slots now and then, not at every take.
    if (this.waitingHead >= 1024 && this.waitingHead * 2 >= this.waiting.length) this.clearTaken();
    this.budget.give(entry.message);
    return entry;
  }

  private heldWaiting(): OutboundMessage[] {
    return this.waiting.slice(this.waitingHead) as OutboundMessage[];
  }

  private clearTaken(): void {
    this.waiting = this.waiting.slice(this.waitingHead);
    this.waitingHead = 0;
  }

  /** The entry is acknowledged (or could not be sent); its row, if it has one, is the caller's to delete. */
  remove(packetId: number): InFlight | undefined {
    const entry = this.inflight.get(packetId);
    if (entry === undefined) return undefined;
    this.inflight.delete(packetId);
    if (entry.seq === null) {
      this.heldSent--;
      this.budget.give(entry.held.message);
    }
    return entry;
  }

  /**
   * Writes every held message: those in flight keep their packet id and state,
   * those waiting go in order behind the stored queued ones.
   */
  spill(write: WriteOutbound): void {
    for (const [packetId, e] of this.inflight) {
      if (e.seq !== null) continue;
      const seq = write({ ...e.held, state: e.state, packetId });
      this.heldSent--;
      this.budget.give(e.held.message);
      if (seq === undefined) this.inflight.delete(packetId);
      else this.inflight.set(packetId, { seq, qos: e.qos, state: e.state });
    }
    this.spillWaiting(write);
  }

  /** The connection ended: its held messages are dropped (a clean session ends with it). */
  discardHeld(): void {
    for (const m of this.heldMessages()) this.budget.give(m);
    for (const [packetId, e] of this.inflight) if (e.seq === null) this.inflight.delete(packetId);
    this.waiting = [];
    this.waitingHead = 0;
    this.heldSent = 0;
  }

  /** Writes every held waiting message, in order, as stored queued ones. */
  spillWaiting(write: WriteOutbound): void {
    const entries = this.heldWaiting();
    this.waiting = [];
    this.waitingHead = 0;
    for (const entry of entries) {
      this.budget.give(entry.message);
      if (write(entry) !== undefined) this.queued++;
    }
  }
}
