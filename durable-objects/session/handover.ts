/**
 * How a session moves between its Session and the gateways, one verb a step:
 *
 * - **claim**: a new connection of the owner takes the session (ownership.ts);
 *   an older connection is taken over (MQTT-3.1.4-2) and what it had comes here
 *   a page at a time, then the new gateway gets the stored state's first page.
 *   A **resume** is the claim of a client that comes back to the gateway that
 *   still holds its session (its socket closed by a restart of that gateway):
 *   nothing moves, the record names the new connection ("present, keep yours").
 * - **switch**: once the new gateway has registered the client's filters at the
 *   shards, this Session, and the gateway the client came from, stop being
 *   destinations; the queue goes on to the gateway a page at a time (hand out).
 * - **park**: the client of a persistent session went offline; its gateway's
 *   state comes here, and this Session becomes the destination until the
 *   session expires (alarms.ts).
 * - **end**: the session is over (a clean session closed, an administrator
 *   dropped it, it expired): its filters leave the shards, everything stored is
 *   deleted, and its registry is told.
 */
import { log } from "../../broker/log.ts";

import {
  emptyPage,
  emptySessionState,
  type OutboundPage,
  type SessionState,
} from "../../broker/session-state.ts";

import { ReasonCode, type Will } from "../../mqtt/index.ts";
import type { ClaimRequest, ClaimResult, GatewayRpc } from "../contracts.ts";
import { claimedRecord, decideClaim, type SessionRecord } from "./ownership.ts";

/** The stored session as the hand-over moves it (StoredState). */
export interface StateStore {
  absorb(state: SessionState, next: (after: number) => Promise<OutboundPage | null>): Promise<void>;
  take(): SessionState;
  clear(): void;
  filters(): string[];
  rows(): number;
}

export interface SessionHandoverDeps {
  readRecord: () => SessionRecord | undefined;
  writeRecord: (record: SessionRecord) => void;
  deleteAlarm: () => Promise<void>;
  /** Deletes everything stored; `tableRows` rows are in the session's tables (they are billed). */
  deleteAll: (tableRows: number) => Promise<void>;
  state: StateStore;
  /** The queue's pages for the client's gateway (SessionQueue). */
  queue: { handOut(after: number): OutboundPage; reclaim(): void; length(): number };
  /** Sets when a parked session expires and its will is due (SessionAlarms). */
  parked: (record: SessionRecord, expiry: number, will: Will | undefined, now: number) => Promise<void>;
  gateway: (name: string) => Pick<GatewayRpc, "takeover" | "outboundPage" | "forget" | "disconnect">;
  /** Makes this Session the destination of the client's filters at the shards, or no longer. */
  register: (clientId: string, filters: string[]) => Promise<void>;
  unregister: (clientId: string, filters: string[]) => Promise<void>;
  /** Tells the client id's registry that this Session forgot it. */
  forgotten: (clientId: string) => Promise<void>;
}

export class SessionHandover {
  private readonly deps: SessionHandoverDeps;

  constructor(deps: SessionHandoverDeps) {
    this.deps = deps;
  }

  /** A new connection for this client id: take over, keep or discard the session. */
  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const { deps } = this;
    const record = deps.readRecord();
    const fresh = record === undefined;
    const decision = decideClaim(record, req, Date.now());
    if (!decision.granted) {
      log("warn", "claim_refused", {
        clientId: req.clientId,
        reason: "client id owned by another principal",
      });
      return { granted: false };
    }
    const { keep } = decision;
    if (keep && record !== undefined && resumable(record, req)) {
      // MQTT-3.2.2-2: the session is present; it stays at the gateway, registered
      // there at the shards, its messages in its rows: only the connection changes.
      deps.writeRecord(claimedRecord(record, req));
      log("info", "session_resumed", { clientId: req.clientId, gateway: req.gateway });
      return {
        granted: true,
        sessionPresent: true,
        state: emptySessionState(),
        switchNeeded: false,
        resumed: true,
      };
    }
    if (record?.online && record.ownerConn !== req.connId) {
      // MQTT-3.1.4-2: the existing connection is closed; its state comes here
      // when it is kept, a page at a time.
      const old = record.ownerGateway;
      const conn = record.ownerConn;
      const state = await deps.gateway(old).takeover(record.clientId, conn);
      if (state !== null && keep) {
        await deps.state.absorb(state, (after) => deps.gateway(old).outboundPage(req.clientId, conn, after));
      }
      record.releaseGateway = record.ownerGateway;
      record.releaseConn = record.ownerConn;
      record.online = false;
    }
    if (record !== undefined && !keep) {
      if (record.registered) await this.unregister(record);
      record.registered = false;
      deps.state.clear();
    }
    const state = keep ? deps.state.take() : emptySessionState();
    if (record?.will !== undefined) {
      // MQTT-3.1.3-9 (5.0): a new connection before the Will Delay has passed cancels the will.
      log("info", "will_cancelled", { clientId: req.clientId });
    }
    const switchNeeded = (record?.registered ?? false) || record?.releaseGateway !== undefined;
    deps.writeRecord(claimedRecord(record, req));
    // Only a stored session can have an alarm (parked, or a will waiting).
    if (!fresh) await deps.deleteAlarm();
    // MQTT-3.2.2-2/-3: session present only when a stored session was resumed.
    return { granted: true, sessionPresent: keep, state, switchNeeded };
  }

  /**
   * The page of the queue after `after`, for the client's gateway, which has
   * stored everything up to `after`: that part is deleted here now. A page
   * handed out stays here until the gateway asks for the next one: if the
   * client leaves first, its rows are still here.
   */
  queuedPage(connId: string, after: number): OutboundPage {
    const record = this.deps.readRecord();
    if (record === undefined || record.ownerConn !== connId || !record.online) return emptyPage(after);
    return this.deps.queue.handOut(after);
  }

  /**
   * The new gateway has registered the client's filters at the shards: this
   * Session, and the gateway the client came from, stop being destinations.
   * Returns the first page of what was queued here in between (queuedPage for
   * the rest).
   */
  async switched(connId: string, after: number): Promise<OutboundPage> {
    const record = this.deps.readRecord();
    if (record === undefined || record.ownerConn !== connId) return emptyPage(after);
    if (record.registered) {
      await this.unregister(record);
      record.registered = false;
    }
    if (record.releaseGateway !== undefined && record.releaseConn !== undefined) {
      await this.deps.gateway(record.releaseGateway).forget(record.clientId, record.releaseConn);
    }
    record.releaseGateway = undefined;
    record.releaseConn = undefined;
    this.deps.writeRecord(record);
    return this.deps.queue.handOut(after);
  }

  /**
   * The client of a persistent session went offline: keep its state and queue for
   * it until the session expires; publish a delayed will when it is due. `state`
   * has the first page of the client's messages; the rest is asked of the
   * gateway a page at a time.
   */
  async park(
    gateway: string,
    connId: string,
    state: SessionState,
    expiry: number,
    will?: Will,
  ): Promise<void> {
    const { deps } = this;
    const record = deps.readRecord();
    if (record === undefined || record.ownerConn !== connId || record.ownerGateway !== gateway) return;
    await deps.state.absorb(state, (after) =>
      deps.gateway(gateway).outboundPage(record.clientId, connId, after),
    );
    record.online = false;
    // Registered before the gateway unregisters: no message falls between.
    if (!record.registered) await deps.register(record.clientId, deps.state.filters());
    record.registered = true;
    await deps.parked(record, expiry, will, Date.now());
    log("info", "session_parked", { clientId: record.clientId, queued: deps.queue.length() });
  }

  /** A clean session ended: nothing is kept. */
  async close(connId: string): Promise<void> {
    const record = this.deps.readRecord();
    if (record === undefined || record.ownerConn !== connId) return;
    await this.end(record);
  }

  /** Disconnects the client (0x98 Administrative action) and deletes its session; false if there was none. */
  async drop(): Promise<boolean> {
    const record = this.deps.readRecord();
    if (record === undefined) return false;
    if (record.online)
      await this.deps
        .gateway(record.ownerGateway)
        .disconnect(record.clientId, ReasonCode.AdministrativeAction);
    await this.end(record);
    log("info", "session_dropped", { clientId: record.clientId });
    return true;
  }

  /** The session is over: its filters leave the shards, and everything stored is deleted. */
  async end(record: SessionRecord): Promise<void> {
    const { deps } = this;
    if (record.registered) await this.unregister(record);
    await deps.deleteAll(record.persistent ? deps.state.rows() : 0);
    deps.queue.reclaim();
    // Its registry sends the client id's clean connects past this object again.
    try {
      await deps.forgotten(record.clientId);
    } catch (err) {
      // Only slower: a registry that still thinks so asks this (empty) Session first.
      log("warn", "registry_not_told", { clientId: record.clientId, error: String(err) });
    }
  }

  private unregister(record: SessionRecord): Promise<void> {
    return this.deps.unregister(record.clientId, this.deps.state.filters());
  }
}

/**
 * Whether `req` resumes the session where it is: the connecting gateway holds
 * the connection the record names as online, and nothing of the session is
 * registered or waiting anywhere else (no switch under way).
 */
function resumable(record: SessionRecord, req: ClaimRequest): boolean {
  return (
    req.resume !== undefined &&
    record.online &&
    record.ownerConn === req.resume &&
    record.ownerGateway === req.gateway &&
    !record.registered &&
    record.releaseGateway === undefined
  );
}
