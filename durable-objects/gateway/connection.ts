/**
 * One client connection on a Gateway. The compact protocol state lives in the
 * WebSocket attachment (at most 2,048 bytes serialized, and it survives
 * hibernation); the rest here is rebuilt when the object wakes.
 */

import type { Identity } from "../../broker/auth/authenticator.ts";
import type { AuthContext, AuthState, EnhancedAuthMethod } from "../../broker/auth/method.ts";
import type { UpgradeIdentity } from "../../broker/auth/upgrade-identity.ts";
import type { Message } from "../../broker/message.ts";
import type { TokenBucket } from "../../broker/rate-limit.ts";
import {
  type ConnectPacket,
  type DecodeError,
  type Packet,
  type ProtocolVersion,
  StreamDecoder,
} from "../../mqtt/index.ts";
import type { ConnectionInbound } from "./connection-inbound.ts";
import type { OutboundWindow } from "./outbound-window.ts";
import { type AliasBudgets, ClientAliases, ServerAliases } from "./topic-aliases.ts";

/** An enhanced authentication exchange (5.0 4.12) under way or completed. */
export interface AuthExchange {
  method: EnhancedAuthMethod;
  state: AuthState;
  ctx: AuthContext;
  /** The CONNECT waiting for the exchange to end; absent once connected. */
  pending?: { connect: ConnectPacket; clientId: string; assigned: boolean };
}

/** A socket that has not sent CONNECT yet. */
export interface AwaitingConnect {
  phase: "awaiting-connect";
  openedAt: number;
  /** The client's network address, for rate limiting failed authentications. */
  address?: string;
  /** The login the Worker verified at the upgrade (broker/auth/upgrade-identity.ts), used at CONNECT. */
  upgrade?: UpgradeIdentity;
}

/** A socket whose CONNECT was accepted. */
export interface Connected {
  phase: "connected";
  openedAt: number;
  clientId: string;
  /** Unique per connection: tells a takeover which connection it replaces. */
  connId: string;
  version: ProtocolVersion;
  /** Seconds; 0 disables the keep-alive check (3.1.2.10). */
  keepAlive: number;
  persistent: boolean;
  /** Session Expiry Interval in force, seconds (5.0; 3.1.1 from configuration). */
  expiry: number;
  /** Epoch ms of the last packet received, written at a coarse grain. */
  lastSeen: number;
  /** The client's address, kept only for presence events that carry it (PRESENCE_ADDRESS). */
  address?: string;
  /**
   * Epoch ms at which the login's credential expires (a token's or cookie's exp, a
   * certificate's notAfter): the connection ends then (timers.ts), as it would be
   * refused at a new CONNECT.
   */
  loginExpires?: number;
  /** 5.0 Receive Maximum of the client: its limit on our unacknowledged QoS 1/2. */
  receiveMaximum?: number;
  /** 5.0 Maximum Packet Size the client accepts. */
  maximumPacketSize?: number;
  /** 5.0 Topic Alias Maximum of the client: aliases we may use towards it. */
  topicAliasMaximum?: number;
  /** 5.0 Request Problem Information 0: no reason strings or user properties on acks. */
  noProblemInfo?: boolean;
  /**
   * The enhanced authentication method the client connected with and its state
   * (MAX_AUTH_STATE characters at most): kept here so that a re-authentication
   * works after the gateway hibernated.
   */
  auth?: { method: string; state: AuthState };
}

export type Attachment = AwaitingConnect | Connected;

export class Connection {
  readonly ws: WebSocket;
  att: Attachment;
  decoder: StreamDecoder;
  /**
   * A run is handling this connection's buffered packets. Set and cleared within the
   * run itself: a read asked for as a run stops (Inbound's readOn, say) must find it
   * cleared, or nothing would read what the connection holds.
   */
  private running = false;
  /** The latest run, for whoever must wait until it is over (`idle`). */
  private run: Promise<void> = Promise.resolve();
  /** Set once the connection is being torn down: no more packets are handled. */
  finished = false;
  /** The disconnected presence event was published (or is not due): once per connection. */
  goneAnnounced = false;
  /** CONNACK has been sent: messages may flow. */
  ready = false;
  /**
   * The session's queue is still being taken from its Session, page by page:
   * new QoS 1/2 messages go there too, behind it, so that order holds.
   */
  backlog = false;
  /**
   * The calls still on their way that sent this connection's messages to its Session
   * while `backlog` held them there (each leaves the set when it lands): the queue is
   * taken once more after they have all landed, since one may reach the Session after
   * it computed what it said was the last page.
   */
  readonly backlogAppends = new Set<Promise<unknown>>();
  /** Outbound QoS 1/2 in flight and waiting, loaded from storage when first needed. */
  window: OutboundWindow | null = null;
  /** In-memory last-seen, more precise than the attachment's. */
  lastSeen: number;
  /** The client's topic aliases (alias → topic), loaded from storage when first needed. */
  readonly inboundAliases: ClientAliases<Connection>;
  /**
   * Aliases set in memory and not yet in storage (handle-publish.ts: saved with
   * the next admitted publish, or by `aliasTimer` before the object may hibernate).
   */
  unsavedAliases: Set<number> | undefined;
  aliasTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * The authentication exchange of this connection; once connected, rebuilt from
   * the attachment after a hibernation (Connected.auth).
   */
  auth: AuthExchange | undefined;
  /** What the gateway holds of this connection's input: bytes, waiting publishes, its rate (inbound.ts). */
  readonly inbound: ConnectionInbound;
  /** SUBSCRIBE and UNSUBSCRIBE packets this client may send now (SUBSCRIBE_RATE); made at the first. */
  subscribeBucket: TokenBucket | undefined;
  /** Bytes of QoS 0 this client may still be sent (OUTBOUND_QOS0_RATE). */
  qos0Budget: TokenBucket | undefined;
  /** Who the client authenticated as; loaded from storage when first needed. */
  identity: Identity | undefined;
  /** Our topic aliases towards the client (topic → alias), least recently used first. */
  readonly outboundAliases: ServerAliases<Connection>;
  /** Events of this connection already logged (see `firstTime`). */
  private logged: Set<string> | undefined;

  constructor(
    ws: WebSocket,
    att: Attachment,
    maxPacketSize: number,
    inbound: (conn: Connection) => ConnectionInbound,
    aliases: AliasBudgets<Connection>,
  ) {
    this.ws = ws;
    this.att = att;
    this.lastSeen = att.phase === "connected" ? att.lastSeen : att.openedAt;
    this.decoder = new StreamDecoder({
      maxPacketSize,
      version: att.phase === "connected" ? att.version : 4,
    });
    this.inbound = inbound(this);
    this.inboundAliases = new ClientAliases(aliases.client, this);
    this.outboundAliases = new ServerAliases(aliases.server, this);
  }

  get connected(): Connected | undefined {
    return this.att.phase === "connected" ? this.att : undefined;
  }

  /** The client's network address, known until CONNECT is accepted (all it is needed for). */
  get address(): string | undefined {
    return this.att.phase === "awaiting-connect" ? this.att.address : undefined;
  }

  get version(): ProtocolVersion {
    return this.att.phase === "connected" ? this.att.version : this.decoder.version;
  }

  /**
   * Detaches the connection from its session: no more packets are handled, and
   * the messages held for it in memory (a clean session's, which end with it) are
   * let go of; returns them, for a shared subscription to pass on to another member.
   */
  detach(): Message[] {
    this.finished = true;
    clearTimeout(this.aliasTimer);
    this.decoder.discard();
    this.inbound.release();
    this.inboundAliases.release();
    this.outboundAliases.release();
    const held = this.window?.heldMessages() ?? [];
    this.window?.discardHeld();
    return held;
  }

  /**
   * Whether `event` happens on this connection for the first time. Events a
   * client can repeat with every message (a denied publish, a full queue) are
   * logged once per connection and counted: Workers Logs bills every line, and a
   * client must not be able to multiply them.
   */
  firstTime(event: string): boolean {
    this.logged ??= new Set();
    if (this.logged.has(event)) return false;
    this.logged.add(event);
    return true;
  }

  save(): void {
    this.ws.serializeAttachment(this.att);
  }

  /**
   * Handles the packets buffered in the decoder in order, each once the one before
   * it is done, so a connection never has more than one packet in hand: bytes wait
   * undecoded (bounded by the caller) and a CONNECT is handled before the next
   * packet is even decoded. Resolves when no whole packet is left or the
   * connection is finished. Frames that arrive meanwhile join the run under way
   * and get undefined: only the frame that started a run waits for it, so a
   * connection keeps at most one event open however many frames it sends (each
   * event open holds the runtime's memory, which no bound here would count).
   */
  read(handle: (next: Packet | DecodeError) => Promise<void> | void): Promise<void> | undefined {
    if (this.running) return undefined;
    this.running = true;
    this.run = this.readAll(handle);
    return this.run;
  }

  /** Resolves once no run is under way. */
  async idle(): Promise<void> {
    while (this.running) await this.run;
  }

  private async readAll(handle: (next: Packet | DecodeError) => Promise<void> | void): Promise<void> {
    try {
      while (!this.finished) {
        // Its decoding waits while it has as many publishes unacknowledged as it may (inbound.ts).
        if (this.inbound.holdsBack()) {
          // Its bytes may wait long: what is decoded of their frame is let go of.
          this.decoder.compact();
          return;
        }
        const next = this.decoder.next();
        if (next === undefined) return;
        await handle(next);
        if ("ok" in next) return;
      }
      this.decoder.discard();
    } finally {
      this.running = false;
    }
  }
}

export type { Packet };
