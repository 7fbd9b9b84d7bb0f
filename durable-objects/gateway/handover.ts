/**
 * Handover and teardown: how a client's session leaves this gateway. One verb
 * for each step:
 *
 * - **end** a connection: it handles no more packets (Connection.detach) and its
 *   session is handed off. Every way a connection stops comes here: DISCONNECT,
 *   a closed socket, a protocol error, keep-alive, an administrator.
 * - **hand off** a session: the will is published (or left to the Session when
 *   delayed), then a persistent session is parked at its Session object and a
 *   clean one closed there.
 * - **hold** a session: after a restart of this gateway, a persistent session
 *   whose socket the restart closed stays here for RESUME_GRACE_MS (its will
 *   published at once, MQTT-3.1.2-8), still registered at the shards, its
 *   messages kept in its rows; then it is handed off.
 * - **resume** a held session: its client came back here within the grace; the
 *   Session agrees ("present, keep yours"), and nothing moves.
 * - **take over**: the Session moves a client that connected elsewhere away from
 *   here (MQTT-3.1.4-2); what was in flight goes with it.
 * - **forget** a client: its filters are unregistered at the shards and its rows
 *   deleted; done last, once whoever holds the session next has it.
 *
 * A session's messages travel a page at a time (OutboundPage): the receiver asks
 * for the next page (`outboundPage`) and nothing is deleted here before it has
 * them all.
 */
import { KeyedBatcher } from "../../broker/batcher.ts";

import type { BrokerConfig } from "../../broker/config.ts";

import { log } from "../../broker/log.ts";

import { MESSAGE_BATCH, type Message, willMessage } from "../../broker/message.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { shardOf } from "../../broker/routing.ts";
import {
  emptySessionState,
  type OutboundPage,
  QUEUE_START,
  type QueuedMessage,
  type SessionState,
  type SubscriptionOptions,
} from "../../broker/session-state.ts";
import type { SubscriptionIndex, Will } from "../../mqtt/index.ts";
import type { Reply } from "../contracts.ts";
import type { SessionStub, ShardStub } from "../stubs.ts";
import type { Connection } from "./connection.ts";
import type { ClientRecord, GatewayStore } from "./store.ts";

export type Ending = "normal" | "abnormal";

/**
 * Sessions handed off at once after a restart (`handOffOrphans`) that each need
 * calls of their own (a persistent session's park at its Session, a clean one's
 * close there): a gateway that held thousands of clients must not start
 * thousands of call chains at once while those clients are connecting again.
 */
export const ORPHAN_HANDOFFS = 64;

/** A session held after a restart (`hold`): its connection, and until when. */
interface Held {
  connId: string;
  /** When its socket was lost (the restart), epoch ms. */
  lostAt: number;
  until: number;
  /** Its client is connecting again here: it is not handed off meanwhile. */
  resuming: boolean;
  /** Messages kept in its rows while held (bounded by MAX_QUEUED_MESSAGES). */
  kept: number;
}

/** What handover and teardown work with; owned by the Gateway. */
export interface HandoverDeps {
  store: GatewayStore;
  index: SubscriptionIndex<SubscriptionOptions>;
  /** Live connections by client id (a connection taken over or ended leaves it). */
  clients: Map<string, Connection>;
  config: BrokerConfig;
  name: () => string;
  session: <T>(clientId: string, call: (s: SessionStub) => Promise<Reply<T>>) => Promise<T>;
  /** A clean session the Registry answers for ended: it lets the client id go. */
  closeAtRegistry: (clientId: string, connId: string) => Promise<void>;
  shard: (index: number) => ShardStub;
  /** Hands a message to the shard of its topic. */
  publish: (message: Message) => Promise<unknown>;
  unregister: (clientId: string, filters: string[]) => Promise<void>;
  /** Says goodbye to a connection that is taken over (closer.ts): DISCONNECT 0x8E, the close frame. */
  farewell: (conn: Connection, reason: CloseReason) => void;
  waitUntil: (promise: Promise<unknown>) => void;
}

export class Handover {
  private readonly deps: HandoverDeps;
  /** Sessions held after a restart, by client id (in memory: a wake rebuilds it, Gateway.reconcile). */
  private readonly held = new Map<string, Held>();

  constructor(deps: HandoverDeps) {
    this.deps = deps;
  }

  /** Ends a connection once: no more packets, then its session is handed off. */
  async end(conn: Connection, how: Ending, why: string): Promise<void> {
    if (conn.finished) return;
    const held = conn.detach();
    const att = conn.connected;
    if (att === undefined) return;
    if (this.deps.clients.get(att.clientId) === conn) this.deps.clients.delete(att.clientId);
    log("info", "disconnect", { gateway: this.deps.name(), clientId: att.clientId, how, why });
    await this.handOff(att.clientId, att.connId, how, held);
  }

  /**
   * Hands off the session of connection `connId`: the will (MQTT-3.1.2-8), then
   * park or close at the Session, then forget. `held` are a clean session's
   * messages that were in memory only.
   */
  async handOff(
    clientId: string,
    connId: string,
    how: Ending,
    held: Message[] = [],
    lostAt?: number,
  ): Promise<void> {
    const { store } = this.deps;
    store.deleteTopicAliases(connId);
    const stored = store.getClient(clientId);
    if (stored === undefined || stored.connId !== connId) return; // taken over meanwhile
    // A session held since its socket was lost: its expiry and Will Delay run from then.
    const record = lostAt === undefined ? stored : sinceLost(stored, Date.now() - lostAt);
    let delayedWill: Will | undefined;
    if (how === "abnormal" && record.will !== undefined) {
      // MQTT-3.1.2-8: the will is published when the connection ends without DISCONNECT;
      // with a Will Delay Interval the Session publishes it later (5.0 3.1.3.2.2).
      store.clearWill(clientId);
      if ((record.will.properties?.willDelayInterval ?? 0) > 0 && record.persistent)
        delayedWill = record.will;
      else await this.publishWill(clientId, record.will);
    }
    if (record.persistent) {
      // The Session registers itself at the shards before we unregister, so no
      // message falls between; until then, deliver() forwards to it. It asks for
      // the pages after the first one itself (outboundPage).
      const state = this.stateOf(clientId);
      const name = this.deps.name();
      await this.deps.session(clientId, (s) => s.park(name, connId, state, record.expiry, delayedWill));
    } else if (record.registrar === "registry") {
      await this.deps.closeAtRegistry(clientId, connId);
    } else {
      await this.deps.session(clientId, (s) => s.close(connId));
    }
    if (store.getClient(clientId)?.connId !== connId) return;
    if (record.persistent) await this.forget(clientId);
    else await this.endClean(clientId, held);
  }

  /**
   * After a restart (not a hibernation wake) the sockets are gone but storage
   * still lists their clients, whose sockets were lost at `lostAt`. A persistent
   * session is held here until RESUME_GRACE_MS after that (`hold`), for its client
   * to resume it; every other is handed off as an abnormal close now. Returns
   * when the first held one is due (the gateway's alarm), if any.
   */
  handOffOrphans(orphans: ClientRecord[], lostAt: number, now = Date.now()): number | undefined {
    const until = lostAt + this.deps.config.resumeGraceMs;
    const lost: ClientRecord[] = [];
    for (const o of orphans) {
      if (until > now && this.holdable(o, until - lostAt)) this.hold(o, lostAt, until);
      else lost.push(o);
    }
    if (lost.length > 0) this.deps.waitUntil(this.handOffAll(lost.map((o) => ({ record: o }))));
    return this.held.size > 0 ? until : undefined;
  }

  /**
   * Hands off the held sessions whose grace is over (the gateway's alarm). Returns
   * when the next one is due, if any is still held.
   */
  async handOffDue(now = Date.now()): Promise<number | undefined> {
    const due: Array<{ record: ClientRecord; lostAt: number }> = [];
    let next: number | undefined;
    for (const [clientId, h] of this.held) {
      if (h.until > now) {
        next = Math.min(next ?? h.until, h.until);
        continue;
      }
      // One whose client is connecting again is left to that connect (`resumed`).
      if (h.resuming) continue;
      this.held.delete(clientId);
      const record = this.deps.store.getClient(clientId);
      if (record?.connId === h.connId) due.push({ record, lostAt: h.lostAt });
    }
    if (due.length > 0) {
      log("info", "held_sessions_handed_off", { gateway: this.deps.name(), count: due.length });
      await this.handOffAll(due);
    }
    return next;
  }

  /** Whether any session is held (the gateway keeps the time of the restart while so). */
  get holding(): boolean {
    return this.held.size > 0;
  }

  /**
   * A client connects here while its session is held: it is not handed off
   * meanwhile, and its messages are still kept here. The held connection, to
   * resume (ClaimRequest.resume), if any.
   */
  resuming(clientId: string): string | undefined {
    const h = this.held.get(clientId);
    if (h === undefined) return undefined;
    h.resuming = true;
    return h.connId;
  }

  /**
   * The connect of a client whose session was held is over: resumed here (its
   * old connection's aliases go, and what the ACL no longer grants of its
   * subscriptions), or not (taken over, refused, failed: then handed off as it
   * would have been, if still here).
   */
  async resumed(
    clientId: string,
    connId: string,
    how: { resumed: true; allowed: (filter: string) => Promise<boolean> } | { resumed: false },
  ): Promise<void> {
    const h = this.held.get(clientId);
    if (h === undefined || h.connId !== connId) return;
    if (!how.resumed) {
      // Still held until its grace is over (the alarm is set for it), or handed off now.
      h.resuming = false;
      if (h.until > Date.now()) return;
      this.held.delete(clientId);
      await this.handOff(clientId, connId, "abnormal", [], h.lostAt);
      return;
    }
    this.held.delete(clientId);
    const { store, index } = this.deps;
    store.deleteTopicAliases(connId);
    const revoked: string[] = [];
    for (const [filter] of store.subsOf(clientId)) {
      if (await how.allowed(filter)) continue;
      index.remove(filter, clientId);
      store.deleteSub(clientId, filter);
      revoked.push(filter);
    }
    if (revoked.length > 0) await this.deps.unregister(clientId, revoked);
  }

  /**
   * Messages for clients of this gateway that are not connected: those whose
   * session is held here are kept in their rows (in order, behind what they had),
   * up to MAX_QUEUED_MESSAGES each while held; the rest are returned, for their Sessions.
   */
  keepHeld(forward: Map<string, QueuedMessage[]>): Map<string, QueuedMessage[]> {
    if (this.held.size === 0) return forward;
    const { store, config } = this.deps;
    for (const [clientId, list] of forward) {
      const h = this.held.get(clientId);
      // While its client connects again, whatever the record says: its new connection sends them.
      if (h === undefined || !(h.resuming || store.getClient(clientId)?.connId === h.connId)) continue;
      forward.delete(clientId);
      let dropped = 0;
      for (const { message, subscriptionIds } of list) {
        if (h.kept >= config.maxQueuedMessages) {
          dropped++;
          continue;
        }
        if (
          store.addOutbound(clientId, { message, subscriptionIds, state: "queued", packetId: null }) !==
          undefined
        )
          h.kept++;
      }
      if (dropped > 0)
        log("warn", "queue_full", {
          gateway: this.deps.name(),
          clientId,
          dropped,
          max: config.maxQueuedMessages,
        });
    }
    return forward;
  }

  /**
   * Whether an orphan's session may be held for `grace` ms: a persistent one its
   * Session answers for, that lives that long offline, and whose will is either
   * published now or delayed past the grace (5.0 3.1.3.2.2: a delayed will is
   * the Session's to publish once due, so a shorter delay is handed off now).
   */
  private holdable(o: ClientRecord, grace: number): boolean {
    if (!o.persistent || o.registrar !== "session" || o.expiry * 1000 < grace) return false;
    const delay = o.will?.properties?.willDelayInterval ?? 0;
    return delay === 0 || delay * 1000 >= grace;
  }

  /** Holds an orphan's session: its will (if not delayed) goes now (MQTT-3.1.2-8). */
  private hold(o: ClientRecord, lostAt: number, until: number): void {
    const { store } = this.deps;
    if (o.will !== undefined && (o.will.properties?.willDelayInterval ?? 0) === 0) {
      store.clearWill(o.clientId);
      this.deps.waitUntil(this.publishWill(o.clientId, o.will));
    }
    this.held.set(o.clientId, { connId: o.connId, lostAt, until, resuming: false, kept: 0 });
  }

  /**
   * Hands off sessions as abnormal closes. A clean session its Registry answers
   * for costs no call of its own (its close and its filters' removal join those
   * of the others, a call per registry and per shard in flight at most: Links);
   * every other goes in one of ORPHAN_HANDOFFS chains at a time. One that fails
   * is logged; the rest go on.
   */
  private async handOffAll(orphans: Array<{ record: ClientRecord; lostAt?: number }>): Promise<void> {
    const handOff = ({ record: o, lostAt }: { record: ClientRecord; lostAt?: number }) =>
      this.handOff(o.clientId, o.connId, "abnormal", [], lostAt).catch((err: unknown) =>
        log("error", "orphan_handoff_failed", {
          gateway: this.deps.name(),
          clientId: o.clientId,
          error: String(err),
        }),
      );
    const batched = orphans.filter((o) => !o.record.persistent && o.record.registrar === "registry");
    const chained = orphans.filter((o) => o.record.persistent || o.record.registrar !== "registry");
    let next = 0;
    const lane = async () => {
      for (let o = chained[next++]; o !== undefined; o = chained[next++]) await handOff(o);
    };
    await Promise.all([
      ...batched.map(handOff),
      ...Array.from({ length: Math.min(ORPHAN_HANDOFFS, chained.length) }, lane),
    ]);
  }

  /**
   * The Session takes the client away from this gateway (a newer connection with
   * the same client id, MQTT-3.1.4-2). Returns the first page of the session
   * state held here; the rest stays until the Session says the client is
   * registered elsewhere (forgetMoved).
   */
  takeover(clientId: string, connId: string): SessionState | null {
    const { store } = this.deps;
    const taken = this.closeTakenOver(clientId, connId);
    if (taken === undefined) return null;
    const { record } = taken;
    const state = record.persistent ? this.stateOf(clientId) : emptySessionState();
    // Until forgetMoved(), messages for this client go on to its Session.
    store.putClient({ ...record, connId: `moved:${connId}`, persistent: true, will: undefined });
    return state;
  }

  /**
   * A newer connection took the client id at its Registry, and this one's session
   * is clean: it ends here and now, with its will and its subscriptions (MQTT-3.1.4-2;
   * a clean session does not outlive its connection, so any Will Delay is over).
   */
  async discard(clientId: string, connId: string): Promise<void> {
    const taken = this.closeTakenOver(clientId, connId);
    if (taken !== undefined) await this.endClean(clientId, taken.held);
  }

  /**
   * Unregisters a clean session's client and deletes its rows. Its unacknowledged
   * shared-subscription messages go to another member once it is unregistered (or
   * the shard could choose it again).
   */
  private async endClean(clientId: string, held: Message[]): Promise<void> {
    const orphans = [...this.deps.store.sharedOutboundOf(clientId), ...held].filter(
      (m) => m.target !== undefined,
    );
    await this.forget(clientId);
    if (orphans.length > 0) await this.redistribute(orphans);
  }

  /**
   * Closes the client's connection here for a newer one (5.0: DISCONNECT 0x8E
   * first) and publishes its will: the old connection did not end with DISCONNECT.
   * A persistent session's Will Delay is cancelled by the new connection instead
   * (5.0 3.1.3.2.2); a clean session ends here, so its will is due. Not awaited:
   * the Session waiting on the takeover may be a destination of the will. Its record
   * and held messages, if the record is still that connection's.
   */
  private closeTakenOver(
    clientId: string,
    connId: string,
  ): { record: ClientRecord; held: Message[] } | undefined {
    const { store, clients } = this.deps;
    const record = store.getClient(clientId);
    if (record === undefined || record.connId !== connId) return undefined;
    if (this.held.get(clientId)?.connId === connId) this.held.delete(clientId);
    const conn = clients.get(clientId);
    let held: Message[] = [];
    if (conn !== undefined && conn.connected?.connId === connId && !conn.finished) {
      held = conn.detach();
      clients.delete(clientId);
      this.deps.farewell(conn, { kind: "taken-over" });
      log("info", "takeover", { gateway: this.deps.name(), clientId });
    }
    const will = record.will;
    if (will !== undefined) {
      store.clearWill(clientId);
      if (!((will.properties?.willDelayInterval ?? 0) > 0 && record.persistent))
        this.deps.waitUntil(this.publishWill(clientId, will));
    }
    return { record, held };
  }

  /** The next page of a session being parked or taken over, after `after`. */
  outboundPage(clientId: string, connId: string, after: number): OutboundPage | null {
    const record = this.deps.store.getClient(clientId);
    if (record === undefined || (record.connId !== connId && record.connId !== `moved:${connId}`))
      return null;
    return this.deps.store.outboundPage(clientId, after);
  }

  /** The client's subscriptions are registered elsewhere now: forget it here. */
  async forgetMoved(clientId: string, connId: string): Promise<void> {
    const record = this.deps.store.getClient(clientId);
    if (record === undefined || (record.connId !== connId && record.connId !== `moved:${connId}`)) return;
    await this.forget(clientId);
  }

  /** A session's state as the next holder receives it: its messages' first page. */
  private stateOf(clientId: string): SessionState {
    const { store } = this.deps;
    return {
      subscriptions: store.subsOf(clientId).map(([filter, options]) => ({ filter, options })),
      outbound: store.outboundPage(clientId, QUEUE_START),
      inboundQos2: store.inboundQos2Of(clientId),
    };
  }

  /** Unregisters a client's filters at the shards and deletes what is stored of it. */
  private async forget(clientId: string): Promise<void> {
    const { store, index } = this.deps;
    const filters = store.subsOf(clientId).map(([f]) => f);
    for (const f of filters) index.remove(f, clientId);
    store.deleteClient(clientId);
    await this.deps.unregister(clientId, filters);
  }

  private async publishWill(clientId: string, will: Will): Promise<void> {
    try {
      await this.deps.publish(willMessage(clientId, will));
      log("info", "will_published", { gateway: this.deps.name(), clientId, topic: will.topic });
    } catch (err) {
      log("error", "will_failed", { gateway: this.deps.name(), clientId, error: String(err) });
    }
  }

  /** Messages of a leaving shared-subscription member, to their shards, a call's worth at a time. */
  private async redistribute(messages: Message[]): Promise<void> {
    const { config } = this.deps;
    const batcher = new KeyedBatcher<number, Message>(async (s, list) => {
      await this.deps.shard(s).redistribute(list);
      return undefined;
    }, MESSAGE_BATCH);
    await Promise.all(messages.map((m) => batcher.add(shardOf(m.topic, config.layout), m)));
  }
}

/**
 * A held session's record as its hand-off sees it `elapsed` ms after its socket
 * was lost: what is left of its Session Expiry Interval and of its Will Delay
 * Interval (5.0 3.1.2.11.2, 3.1.3.2.2: both run from the network connection's close).
 */
function sinceLost(record: ClientRecord, elapsed: number): ClientRecord {
  const s = Math.floor(elapsed / 1000);
  const left = (seconds: number) => Math.max(0, seconds - s);
  const delay = record.will?.properties?.willDelayInterval;
  const will =
    record.will === undefined || delay === undefined
      ? record.will
      : { ...record.will, properties: { ...record.will.properties, willDelayInterval: left(delay) } };
  return { ...record, expiry: record.expiry === 0xffffffff ? record.expiry : left(record.expiry), will };
}
