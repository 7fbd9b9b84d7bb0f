/**
 * Inbound: what a gateway holds of what its clients send, from the frame to the
 * shard, and how much of it.
 *
 * The Hibernation API gives no back-pressure: workerd reads the next frame of a
 * socket as soon as the event of the last one has run, however long the work it
 * started takes. So frames are never refused for being early; instead every byte
 * a connection makes the gateway hold is counted, and bounded:
 *
 * - per connection: undecoded input, at most one largest packet before CONNACK
 *   and `connectionBytes` more after; past it the connection ends (0x96). Its
 *   decoded publishes waiting to be routed are bounded by holding back its
 *   decoding instead (`decodeAhead`, `decodeAheadBytes`, below), so a client that
 *   sends a few large publishes while over its rate, or while the way to the
 *   shards is full, is slowed down, not ended;
 * - per gateway: `gatewayBytes` over all connections, undecoded and waiting;
 *   past it the connection holding the most ends (0x89 Server busy), so a flood
 *   costs the flooder, not its neighbours.
 *
 * A connection with `decodeAhead` QoS 1/2 publishes decoded and not acknowledged,
 * or `decodeAheadBytes` of them waiting, has what it sends more kept undecoded, in
 * its bytes, until half are acknowledged (and gone on their way): a frame from
 * a client that sends faster than its publishes are routed costs a copy, not the
 * decoding and routing that would delay every other connection's frames (all of an
 * isolate's events share one thread), and one that keeps on sending reaches its
 * byte bound and ends.
 *
 * Over its rate (PUBLISH_RATE, a token bucket per connection) a client is shaped,
 * not ended: a QoS 1/2 PUBLISH waits here and its PUBACK/PUBREC waits with it, so
 * a client with a window of its own slows down; QoS 0 over the rate is dropped
 * and counted. Waiting publishes go on to the shards in turns, one connection's
 * at a time (round robin), while fewer than a window are on their way: a
 * connection with a thousand waiting cannot make a newcomer's one wait behind them.
 */
import { KeyedBatcher, MESSAGE_SPACING_MS } from "../../broker/batcher.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import type { Counters } from "../../broker/counters.ts";
import {
  MESSAGE_BATCH,
  type Message,
  messageBytes,
  RPC_BATCH_BYTES,
  RPC_BATCH_MESSAGES,
} from "../../broker/message.ts";
import { TokenBucket } from "../../broker/rate-limit.ts";
import { shardOf } from "../../broker/routing.ts";
import type { GatewayCounter } from "../../broker/stats.ts";
import { PacketType, ReasonCode } from "../../mqtt/index.ts";
import { isPlainQos0, plainQos0Payload } from "../../mqtt/publish-scan.ts";
import type { Connection } from "./connection.ts";
import { ConnectionInbound, type DecodeAhead, type Routed, type Waiting } from "./connection-inbound.ts";

/** The bounds of the inbound path (README: bounds). */
export interface InboundLimits {
  /** Bytes of undecoded input a connected client may have here beyond one largest packet. */
  connectionBytes: number;
  /** Bytes all connections of a gateway may have waiting here together. */
  gatewayBytes: number;
  /**
   * QoS 1/2 publishes all connections of a gateway may have waiting together:
   * work the gateway has taken on, a second or two of routing. Memory aside, it
   * bounds how far behind a newcomer's traffic can fall.
   */
  gatewayMessages: number;
  /** Messages on their way to the shards at once, and their bytes (at least one message goes). */
  windowMessages: number;
  windowBytes: number;
  /**
   * QoS 1/2 publishes of one connection decoded and not acknowledged yet: at this
   * many, what it sends more waits undecoded (in `connectionBytes`) until half are
   * acknowledged. Without back-pressure on frames this stands in for a socket not
   * read: a client sending faster than its publishes are routed costs the gateway a
   * copy a frame, not the decoding and routing that would delay its neighbours'
   * frames; one that keeps on past its bytes is ended (0x96).
   */
  decodeAhead: number;
  /**
   * Bytes of one connection's decoded publishes waiting (for a token or for room)
   * past which its decoding is held back too, whatever their number (a lower
   * `RECEIVE_MAXIMUM` raises `decodeAhead`, large publishes fill fewer): so a
   * connection holds at most this and one packet decoded, beside its undecoded
   * input.
   */
  decodeAheadBytes: number;
  /** The least time between the starts of two calls to one shard (batcher.ts, PUBLISH_SPACING_MS); absent: none. */
  spacingMs?: number;
}

export const INBOUND_LIMITS: InboundLimits = {
  // A burst of 5,000 small publishes from MQTT.js fits, with room.
  connectionBytes: 2 * 2 ** 20,
  // With the held outbound messages (HELD_BUDGET_BYTES), half of an isolate's 128 MB;
  // 40 publishes of 1 MiB arriving at once fit.
  gatewayBytes: 48 * 2 ** 20,
  // With at most `decodeAhead` decoded a connection, reached only by about 600 connections at once
  // (or a lower decodeAhead); it bounds a gateway's decoded backlog whatever the settings.
  gatewayMessages: 20_000,
  // A call's worth in flight to a shard and another waiting.
  windowMessages: 2 * RPC_BATCH_MESSAGES,
  windowBytes: RPC_BATCH_BYTES,
  // EMQX's max_inflight, which it announces to 5.0 clients as its Receive Maximum.
  decodeAhead: 32,
  // Two calls' worth: an MQTT.js client over its rate with 16 of 1 MiB outstanding is
  // slowed down, not ended (what it sends beyond waits undecoded, within connectionBytes).
  decodeAheadBytes: 16 * 2 ** 20,
  spacingMs: MESSAGE_SPACING_MS,
};
/**
 * How far each connection's decoding may run ahead of its acknowledgements under
 * `limits`. A Receive Maximum set lower than MQTT's most is enforced: one past it
 * is decoded, to be refused (0x93).
 */
export function decodeAheadOf(limits: InboundLimits, receiveMaximum = 65535): DecodeAhead {
  return {
    messages: receiveMaximum < 65535 ? Math.max(limits.decodeAhead, receiveMaximum + 1) : limits.decodeAhead,
    bytes: limits.decodeAheadBytes,
  };
}

/** What a waiting publish weighs in memory beyond its bytes in a call (the objects holding it). */
const WAITING_OVERHEAD = 128;
/**
 * How often, at most, the tokens of clients over their rate are handed out (ms).
 * Coarse on purpose: what several shaped clients send in one tick goes to a shard
 * in one call instead of one call a message; a shaped client waits anyway.
 */
export const SHAPING_TICK_MS = 50;

export { ConnectionInbound, type Routed } from "./connection-inbound.ts";

/** Why a connection may not hold a frame more. */
export interface Refusal {
  reasonCode: number;
  why: string;
}

export interface InboundDeps {
  config: BrokerConfig;
  counters: Pick<Counters<GatewayCounter>, "add">;
  /** Publishes a batch at a shard: one reason code per message. */
  publishAt: (shard: number, messages: Message[]) => Promise<number[]>;
  /** Ends a connection that holds too much of the gateway. */
  evict: (conn: Connection, refusal: Refusal) => void;
  /** Reads on what a connection held back undecoded (ConnectionInbound.holdsBack), now that it may (readsOn). */
  readOn: (conn: Connection) => void;
  /** The bounds; INBOUND_LIMITS unless a test sets others. */
  limits?: InboundLimits;
}

export class Inbound {
  /** Bytes held for all connections together (ConnectionInbound.accounted, summed). */
  private total = 0;
  /** Connections holding bytes now. */
  private readonly holders = new Set<ConnectionInbound>();
  /** QoS 1/2 publishes waiting, all connections together. */
  private waitingTotal = 0;
  /** Connections with publishes waiting, in the order they get their next turn. */
  private readonly turns = new Set<ConnectionInbound>();
  /**
   * Messages to the shard of their topic, batched per shard (batcher.ts), a
   * call at most every MESSAGE_SPACING_MS per shard; what matches this gateway's
   * own clients comes back in the answer (links.publishAt).
   */
  private readonly router: KeyedBatcher<number, Message, number>;
  /** What dropsUndecoded dropped and has not counted yet (counted at the next `account`). */
  private readonly undecoded = { messages: 0, bytes: 0, rate: 0, overload: 0 };
  /** The last pump stopped for want of room: only then do a QoS 0 and an answer pump (it walks every turn). */
  private roomWanted = false;
  private tokenTimer: ReturnType<typeof setTimeout> | undefined;
  private tokenTimerAt = Number.POSITIVE_INFINITY;
  private readonly deps: InboundDeps;
  private readonly limits: InboundLimits;
  /** What each connection may have decoded ahead of its acknowledgements (`InboundLimits.decodeAhead`, past a lower Receive Maximum, and `decodeAheadBytes`). */
  private readonly decodeAhead: DecodeAhead;

  constructor(deps: InboundDeps) {
    this.deps = deps;
    this.limits = deps.limits ?? { ...INBOUND_LIMITS, spacingMs: deps.config.publishSpacingMs };
    this.decodeAhead = decodeAheadOf(this.limits, deps.config.receiveMaximum);
    this.router = new KeyedBatcher((shard, messages) => deps.publishAt(shard, messages), {
      ...MESSAGE_BATCH,
      spacingMs: this.limits.spacingMs,
    });
  }

  /**
   * The inbound state of a new (or woken) connection. Its decoder asks, before
   * decoding a packet, whether it is a QoS 0 PUBLISH dropped anyway (`dropsUndecoded`).
   */
  attach(conn: Connection): ConnectionInbound {
    const { publishRate, publishBurst } = this.deps.config;
    const bucket = new TokenBucket(publishRate, publishBurst);
    const state = new ConnectionInbound(conn, bucket, this, this.decodeAhead);
    conn.decoder.skip = (buf, start, headerLen, end) =>
      this.dropsUndecoded(state, buf, start, headerLen, end);
    return state;
  }

  /**
   * A QoS 0 PUBLISH that `admitQos0` would drop (its connection over its rate, or
   * the way to the shards full) is dropped before it is decoded, and counted as
   * handle-publish.ts counts a dropped one: a flood over the rate costs the
   * gateway a look at each packet's fixed header and topic, no decoded packet,
   * string or message. One that sets a Topic Alias, or that decoding could
   * refuse, is not taken here (plainQos0Payload): it is decoded and handled.
   */
  private dropsUndecoded(
    state: ConnectionInbound,
    buf: Uint8Array,
    start: number,
    headerLen: number,
    end: number,
  ): boolean {
    const conn = state.conn;
    // Its socket closed with input held back (ConnectionInbound.lift): the publishes in it
    // go unanswered and unrouted, as if never sent; the rest (a DISCONNECT) is decoded.
    if (state.closed && (buf[start] as number) >> 4 === PacketType.publish) {
      this.unhold(state, end - start);
      return true;
    }
    // Anything but QoS 0 without DUP is decoded (and QoS 1/2 handled as ever), before any rate check.
    if (!isPlainQos0(buf[start] as number) || conn.att.phase !== "connected" || conn.finished) return false;
    // The time its frame arrived (admit): reading the clock is a call into the runtime.
    const now = state.frameAt;
    const overRate = state.waitingCount > 0 || !state.bucket.has(now);
    if (!overRate && this.roomForQos0()) return false;
    const version = conn.att.version;
    const payload = plainQos0Payload(buf, start, headerLen, end, version);
    if (payload < 0) return false;
    const dropped = this.undecoded;
    if (overRate) dropped.rate++;
    else {
      // As admitQos0 does: a token found is spent on a message dropped for want of room.
      state.bucket.take(now);
      dropped.overload++;
    }
    dropped.messages++;
    // Its topic and payload, as handle-publish.ts counts them: the body but for the topic's length and the properties'.
    dropped.bytes += end - start - headerLen - 2 - (version === 5 ? 1 : 0);
    // Its bytes are no longer held (the decoder consumes them; account() would find as much).
    this.unhold(state, end - start);
    return true;
  }

  /** Counts what dropsUndecoded dropped: a few counters a run of packets, not a few a packet. */
  private countUndecoded(): void {
    const dropped = this.undecoded;
    if (dropped.messages === 0) return;
    const { counters } = this.deps;
    counters.add("messages_in", dropped.messages);
    counters.add("bytes_in", dropped.bytes);
    if (dropped.rate > 0) counters.add("dropped_rate", dropped.rate);
    if (dropped.overload > 0) counters.add("dropped_overload", dropped.overload);
    dropped.messages = dropped.bytes = dropped.rate = dropped.overload = 0;
  }

  /** `bytes` of what `state` held are let go of without a handler to account for them. */
  private unhold(state: ConnectionInbound, bytes: number): void {
    const less = Math.min(bytes, state.accounted);
    this.total -= less;
    state.accounted -= less;
    if (state.accounted === 0) this.holders.delete(state);
  }

  /** Bytes held for all connections (for tests and stats). */
  get heldBytes(): number {
    return this.total;
  }

  /**
   * Whether a frame of `bytes`, arrived `now`, may join what `conn` holds; a refusal
   * ends that connection. Past the gateway's bound, the connections holding the most are
   * ended first, down to this one.
   */
  admit(conn: Connection, bytes: number, now = Date.now()): Refusal | undefined {
    const state = conn.inbound;
    state.frameAt = now;
    const limit = this.connectionLimit(conn);
    // Undecoded input only: its waiting publishes are bounded by holding back decoding (holdsBack).
    if (conn.decoder.buffered + bytes > limit) {
      return {
        reasonCode: ReasonCode.MessageRateTooHigh,
        why: `more than ${limit} bytes received and not yet handled`,
      };
    }
    while (this.total + bytes > this.limits.gatewayBytes) {
      const largest = this.largestHolder();
      if (largest === undefined || largest === state || largest.accounted <= state.held + bytes) {
        return { reasonCode: ReasonCode.ServerBusy, why: "the gateway holds as much input as it may" };
      }
      largest.conn.decoder.discard();
      largest.release();
      this.deps.evict(largest.conn, {
        reasonCode: ReasonCode.ServerBusy,
        why: "held the most input when the gateway's bound was reached",
      });
    }
    return undefined;
  }

  /** Counts what `conn` holds now in the gateway's total (after input arrived or was decoded). */
  account(state: ConnectionInbound): void {
    this.countUndecoded();
    const held = state.conn.finished ? 0 : state.held;
    this.total += held - state.accounted;
    state.accounted = held;
    if (held > 0) this.holders.add(state);
    else this.holders.delete(state);
  }

  /** The connection ended (ConnectionInbound.release): nothing of it is held any more. */
  release(state: ConnectionInbound): void {
    this.waitingTotal -= state.waitingCount;
    this.turns.delete(state);
    this.total -= state.accounted;
    state.accounted = 0;
    this.holders.delete(state);
  }

  /**
   * A QoS 0 PUBLISH may go on now: within the connection's rate and with room on
   * the way to the shards; else it is dropped and counted (never waits).
   */
  admitQos0(conn: Connection): boolean {
    const state = conn.inbound;
    if (state.waitingCount > 0 || !state.bucket.take()) {
      this.deps.counters.add("dropped_rate");
      return false;
    }
    if (!this.roomForQos0()) {
      this.deps.counters.add("dropped_overload");
      return false;
    }
    return true;
  }

  /** Sends a message to the shard of its topic (a will, a QoS 0 admitted, a waiting one's turn). */
  route(message: Message): Promise<number | undefined> {
    const routed = this.router.add(shardOf(message.topic, this.deps.config.layout), message);
    // The room it took is free again once it is through: QoS 1/2 waiting for room go on.
    routed.then(this.freed, this.freed);
    return routed;
  }

  private readonly freed = (): void => {
    if (this.roomWanted) this.pump();
  };

  /**
   * A QoS 1/2 publish: it goes on in the connection's turn, once the connection
   * has a token and there is room on the way; `settle` runs when its shard has it.
   * With `gatewayMessages` waiting already, the connection with the most waiting
   * ends (0x96) and this one goes on; a refusal when that is this connection.
   */
  enqueue(conn: Connection, message: Message, settle: (routed: Routed) => void): Refusal | undefined {
    const state = conn.inbound;
    // Ended while its handler awaited (the ACL): its publish goes unanswered, as the
    // rest of what it held did, and is not counted where nothing would take it off.
    if (conn.finished) return undefined;
    while (this.waitingTotal >= this.limits.gatewayMessages) {
      const most = this.mostWaiting();
      const refusal = {
        reasonCode: ReasonCode.MessageRateTooHigh,
        why: `the most publishes waiting when the gateway had ${this.limits.gatewayMessages}`,
      };
      if (most === undefined || most === state || most.waitingCount <= state.waitingCount) return refusal;
      most.conn.decoder.discard();
      most.release();
      this.deps.evict(most.conn, refusal);
    }
    state.push({ message, bytes: messageBytes(message) + WAITING_OVERHEAD, settle, from: state });
    this.waitingTotal++;
    this.account(state);
    this.turns.add(state);
    this.pump();
    return undefined;
  }

  /** Room for a QoS 0 once the QoS 1/2 waiting for room had theirs (they do not wait behind a flood of QoS 0). */
  private roomForQos0(): boolean {
    if (this.roomWanted && this.hasRoom()) this.pump();
    return this.hasRoom();
  }

  /** Room on the way to the shards for one more message. */
  private hasRoom(): boolean {
    return (
      this.router.pendingItems < this.limits.windowMessages &&
      this.router.pendingBytes < this.limits.windowBytes
    );
  }

  /**
   * Sends waiting publishes on while there is room, one connection's at a time
   * (a connection that sent one goes to the back of the turns); a connection
   * without a token keeps its place until the next shaping tick. `tick`: the
   * shaping timer's run, which serves shaped connections too.
   */
  private pump(tick = false): void {
    const now = Date.now();
    let nextToken = Number.POSITIVE_INFINITY;
    this.roomWanted = false;
    for (const state of this.turns) {
      if (!this.hasRoom()) {
        this.roomWanted = true;
        return;
      }
      if (state.conn.finished || state.waitingCount === 0) {
        state.shaped = false;
        this.turns.delete(state);
        continue;
      }
      if ((state.shaped && !tick) || !state.bucket.take(now)) {
        state.shaped = true;
        nextToken = Math.min(nextToken, state.bucket.nextAt(now));
        continue;
      }
      const w = state.shift() as Waiting;
      this.waitingTotal--;
      this.account(state);
      // To the back of the turns: iteration reaches it again after the others.
      this.turns.delete(state);
      if (state.waitingCount > 0) this.turns.add(state);
      else state.shaped = false;
      const shard = shardOf(w.message.topic, this.deps.config.layout);
      this.router.add(shard, w.message).then(
        (code) => this.settled(w, { ok: true, code }),
        (error) => this.settled(w, { ok: false, error }),
      );
      // A publisher with half its Receive Maximum unacknowledged is not held back
      // for the spacing of calls (batcher.ts): one more than it is refused (0x93).
      const unacknowledged = state.unacknowledged + (state.awaitingRelease ?? 0);
      if (2 * unacknowledged >= this.deps.config.receiveMaximum) this.router.hurry(shard);
    }
    if (nextToken !== Number.POSITIVE_INFINITY) this.wakeAt(nextToken, now);
  }

  private settled(w: Waiting, routed: Routed): void {
    w.settle(routed);
    // The room it freed goes to the next waiting first: what is left waiting is then what reading on weighs.
    if (this.turns.size > 0) this.pump();
    if (w.from.readsOn()) this.deps.readOn(w.from.conn);
  }

  /** The timer for the next token of a waiting connection (one timer for the gateway), at the next tick. */
  private wakeAt(next: number, now: number): void {
    const at = Math.max(next, now + SHAPING_TICK_MS);
    if (this.tokenTimer !== undefined && this.tokenTimerAt <= at) return;
    clearTimeout(this.tokenTimer);
    this.tokenTimerAt = at;
    this.tokenTimer = setTimeout(
      () => {
        this.tokenTimer = undefined;
        this.tokenTimerAt = Number.POSITIVE_INFINITY;
        this.pump(true);
      },
      Math.max(1, at - now),
    );
  }

  private connectionLimit(conn: Connection): number {
    const { maxPacketSize } = this.deps.config;
    // Before CONNACK nothing but CONNECT and AUTH is read: one packet's worth.
    return conn.ready ? maxPacketSize + this.limits.connectionBytes : maxPacketSize;
  }

  private mostWaiting(): ConnectionInbound | undefined {
    let most: ConnectionInbound | undefined;
    for (const t of this.turns) if (most === undefined || t.waitingCount > most.waitingCount) most = t;
    return most;
  }

  private largestHolder(): ConnectionInbound | undefined {
    let largest: ConnectionInbound | undefined;
    for (const h of this.holders) if (largest === undefined || h.accounted > largest.accounted) largest = h;
    return largest;
  }
}
