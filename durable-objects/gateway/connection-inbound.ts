/**
 * What one connection holds of a gateway's inbound path (inbound.ts): its rate,
 * its QoS 1/2 publishes accepted and not acknowledged, the ones waiting for a
 * token or for room on the way to the shards, and whether its decoding is held
 * back until they are acknowledged.
 */
import type { Message } from "../../broker/message.ts";
import type { TokenBucket } from "../../broker/rate-limit.ts";
import type { Connection } from "./connection.ts";

/** The gateway's inbound path, as a connection's part of it sees it (Inbound). */
export interface InboundOwner {
  /** The connection ended: nothing of it is held any more. */
  release(state: ConnectionInbound): void;
}

/** How a message's trip to its shard ended: the shard's reason code, or the call's failure. */
export type Routed = { ok: true; code: number | undefined } | { ok: false; error: unknown };

/** A QoS 1/2 publish waiting for its connection's next token or for room on the way. */
export interface Waiting {
  message: Message;
  bytes: number;
  settle: (routed: Routed) => void;
  /** The connection it came from. */
  from: ConnectionInbound;
}

/**
 * How far a connection's decoding may run ahead of its acknowledgements: QoS 1/2
 * publishes decoded and not acknowledged, and bytes of decoded publishes waiting
 * (InboundLimits.decodeAhead, decodeAheadBytes). Past either, what it sends more
 * waits undecoded.
 */
export interface DecodeAhead {
  messages: number;
  bytes: number;
}

/** What one connection holds of the inbound path; made by Inbound.attach. */
export class ConnectionInbound {
  /** PUBLISH packets a second this connection may send (PUBLISH_RATE, PUBLISH_BURST). */
  readonly bucket: TokenBucket;
  /** QoS 1 publishes accepted and not acknowledged yet (waiting or on their way). */
  qos1 = 0;
  /** Packet ids of QoS 2 publishes accepted and not answered with PUBREC yet. */
  readonly qos2 = new Set<number>();
  /**
   * QoS 2 packet ids stored awaiting PUBREL: read from storage the first time
   * (a count a PUBLISH would otherwise query), then kept as they come and go.
   */
  awaitingRelease: number | undefined;
  /** Bytes counted for this connection in the gateway's total. */
  accounted = 0;
  /**
   * When its latest frame arrived (Inbound.admit): the time its packets are held to
   * the rate by when dropped undecoded (one clock read a frame, not a packet). A
   * packet decoded after a handler's await is measured against the latest frame's
   * time, which may be a little behind the clock: it may be dropped for a token
   * that came meanwhile.
   */
  frameAt = Date.now();
  /**
   * Over its rate: it found no token for a waiting publish, and has had some
   * waiting ever since. Such a connection is served at the shaping ticks only.
   */
  shaped = false;
  /**
   * Its decoding is held back: `decodeAhead.messages` of its QoS 1/2 were decoded and
   * not acknowledged yet, or `decodeAhead.bytes` of them were waiting, when the next
   * packet was due. What it sends meanwhile waits undecoded, held in its byte
   * budget; Inbound reads on when `readsOn` says it may.
   */
  heldBack = false;
  /** It was held back for its bytes waiting, not for its number unacknowledged (`readsOn`). */
  private heldForBytes = false;
  /** Its socket closed with input held back (`lift`): nothing is held back any more. */
  closed = false;
  private waiting: Array<Waiting | undefined> = [];
  private head = 0;
  private waitingBytes = 0;
  readonly conn: Connection;
  private readonly owner: InboundOwner;
  /** How far decoding may run ahead of acknowledgements. */
  private readonly decodeAhead: DecodeAhead;

  constructor(conn: Connection, bucket: TokenBucket, owner: InboundOwner, decodeAhead: DecodeAhead) {
    this.conn = conn;
    this.bucket = bucket;
    this.owner = owner;
    this.decodeAhead = decodeAhead;
  }

  /** QoS 1/2 publishes decoded and not acknowledged yet (a QoS 2 one until its PUBREC). */
  get unacknowledged(): number {
    return this.qos1 + this.qos2.size;
  }

  /**
   * Whether its next packet waits undecoded (Connection.read asks before each): a
   * client that sends faster than its publishes are routed makes the gateway hold
   * its bytes, within its budget, instead of decoding them into work that delays
   * every other connection's frames.
   */
  holdsBack(): boolean {
    if (this.heldBack || this.closed) return this.heldBack;
    const { messages, bytes } = this.decodeAhead;
    if (this.unacknowledged >= messages) this.heldBack = true;
    else if (this.waitingBytes >= bytes) this.heldBack = this.heldForBytes = true;
    return this.heldBack;
  }

  /**
   * Its socket closed with input held back: what it held is read now, hold or not;
   * the publishes in it are dropped unanswered (Inbound.dropsUndecoded: the client
   * has no PUBACK for them), and a DISCONNECT among it ends the session as the
   * client meant it to.
   */
  lift(): void {
    this.closed = true;
    this.heldBack = this.heldForBytes = false;
  }

  /**
   * Whether decoding may go on. Held back for its number unacknowledged: once half
   * are acknowledged (what was ahead then goes on in one run). Held back for its
   * bytes waiting: as soon as less waits, not half: a client keeping a few large
   * publishes outstanding sends the next as one is acknowledged, and that one must
   * not wait undecoded, past its bytes, until half the others have gone.
   */
  readsOn(): boolean {
    if (!this.heldBack) return false;
    const { messages, bytes } = this.decodeAhead;
    const enough = this.heldForBytes ? this.unacknowledged < messages : 2 * this.unacknowledged <= messages;
    if (!enough || this.waitingBytes >= bytes) return false;
    this.heldBack = this.heldForBytes = false;
    return !this.conn.finished;
  }

  /** Bytes held for this connection now: undecoded input and waiting publishes. */
  get held(): number {
    return this.conn.decoder.buffered + this.waitingBytes;
  }

  get waitingCount(): number {
    return this.waiting.length - this.head;
  }

  push(w: Waiting): void {
    this.waiting.push(w);
    this.waitingBytes += w.bytes;
  }

  shift(): Waiting | undefined {
    if (this.head >= this.waiting.length) return undefined;
    const w = this.waiting[this.head] as Waiting;
    this.waiting[this.head++] = undefined;
    this.waitingBytes -= w.bytes;
    // Drop the taken slots now and then, not at every take.
    if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    return w;
  }

  /** The connection ended: what waits is let go of, unanswered (the client sends it again). */
  release(): void {
    this.owner.release(this);
    this.waiting = [];
    this.head = 0;
    this.waitingBytes = 0;
  }
}
