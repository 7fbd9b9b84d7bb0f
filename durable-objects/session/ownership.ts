/**
 * Who a session belongs to and where its client is: the Session's record, and
 * the decisions a claim makes on it. A client id's session, online or offline,
 * is its owner's alone (invariant 7); a new connection of the owner takes the
 * session over (MQTT-3.1.4-2), and keeps or discards what was stored
 * (MQTT-3.1.2-4, 5.0 Clean Start).
 */
import { legacyOwnerOf } from "../../broker/auth/authenticator.ts";

import type { Will } from "../../mqtt/index.ts";
import type { ClaimRequest } from "../contracts.ts";

/** The session's record, kept in key-value storage (SessionStorage). */
export interface SessionRecord {
  clientId: string;
  /**
   * The principal that created the session (ownerOf). Absent only in records
   * written before sessions had owners: the next claim records its principal.
   */
  owner?: string;
  /**
   * Set on records written since owners are namespaced per way in (ownerOf).
   * Absent: `owner` is an earlier release's `user:<name>`, which the same login
   * may still claim (legacyOwnerOf); the claim records the namespaced owner.
   */
  namespaced?: true;
  ownerGateway: string;
  ownerConn: string;
  online: boolean;
  persistent: boolean;
  expiry: number;
  /** Epoch ms the offline session expires; 0 while online. */
  expiresAt: number;
  /** Whether this Session is registered at the shards as the destination. */
  registered: boolean;
  /** A gateway that still has the client's filters registered, to release on switch. */
  releaseGateway?: string;
  releaseConn?: string;

  /** A will waiting for its Will Delay Interval (5.0 3.1.3.2.2), and when it is due. */
  will?: Will;
  willAt?: number;
}

/** What a claim may do: nothing (another principal's session), or keep the stored session or not. */
export type ClaimDecision = { granted: false } | { granted: true; keep: boolean };

/**
 * Whether `req` may have the session `record` holds, and whether what is
 * stored is kept. A session that expired (its alarm not run yet) is no one's
 * any more, and is not kept.
 */
export function decideClaim(
  record: SessionRecord | undefined,
  req: ClaimRequest,
  now: number,
): ClaimDecision {
  const ended = record !== undefined && !record.online && record.expiresAt > 0 && record.expiresAt <= now;
  // Another principal is refused before anything is touched: the session, its
  // queue, its will and the connection that has it now stay as they are.
  const owned =
    record?.owner === undefined ||
    record.owner === req.owner ||
    (record.namespaced !== true && record.owner === legacyOwnerOf(req.owner));
  if (!owned && !ended) return { granted: false };
  // MQTT-3.1.2-4 (3.1.1) / MQTT-3.1.2-4 (5.0 Clean Start): discard any old session.
  return { granted: true, keep: record?.persistent === true && !req.cleanStart && !ended };
}

/**
 * The record once `req`'s connection has the session: online there, owned by
 * its principal, no will waiting (MQTT-3.1.3-9 (5.0): a new connection before
 * the Will Delay has passed cancels it). Whether the Session is registered at
 * the shards, and the gateway to release, carry over until the switch.
 */
export function claimedRecord(previous: SessionRecord | undefined, req: ClaimRequest): SessionRecord {
  return {
    clientId: req.clientId,
    owner: req.owner,
    namespaced: true,
    will: undefined,
    willAt: undefined,
    ownerGateway: req.gateway,
    ownerConn: req.connId,
    online: true,
    persistent: req.persistent,
    expiry: req.expiry,
    expiresAt: 0,
    registered: previous?.registered ?? false,
    releaseGateway: previous?.releaseGateway,
    releaseConn: previous?.releaseConn,
  };
}
