/**
 * The gateway's one storage alarm (timers do not survive hibernation and keep an
 * object awake): set for the earliest deadline of its connections (CONNECT
 * timeout, keep-alive at 1.5 × the client's interval, 3.1.1 MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22, a login's
 * expiry), of the sessions held since a restart (gateway/handover.ts) and of the
 * next $SYS round while anyone here subscribes to $SYS. The alarm's time is kept
 * in memory (asked of storage once after a wake): a connect does not read it.
 */
import type { BrokerConfig } from "../../broker/config.ts";
import type { Counters } from "../../broker/counters.ts";
import { log } from "../../broker/log.ts";
import type { Message } from "../../broker/message.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import type { BrokerStats, GatewayCounter } from "../../broker/stats.ts";
import type { Connection } from "./connection.ts";
import type { Sockets } from "./sockets.ts";
import type { GatewayStore } from "./store.ts";
import { sysMessages } from "./sys-topics.ts";

export interface TimersDeps {
  ctx: Pick<DurableObjectState, "getWebSockets" | "storage">;
  config: Pick<BrokerConfig, "connectTimeout" | "sysInterval">;
  counters: Pick<Counters<GatewayCounter>, "add">;
  store: Pick<GatewayStore, "hasSysSubscription" | "getMeta" | "setMeta">;
  sockets: Pick<Sockets, "of">;
  close(conn: Connection, reason: CloseReason): Promise<void>;
  stats(): Promise<BrokerStats>;
  /** Fans messages out to this gateway's clients (for $SYS). */
  deliver(messages: Message[]): Promise<void>;
  /** Hands off the sessions held past their grace; when the next one is due. */
  handOffDue(now: number): Promise<number | undefined>;
  name(): string;
}

export class Timers {
  /** When $SYS is next due; in memory: after an eviction it is due at once. */
  private sysDue = 0;
  /**
   * When the storage alarm is set for (null: not set); undefined until read once
   * from storage (memory is empty after a wake or a restart; the alarm is not).
   */
  private alarmAt: number | null | undefined;
  private readonly deps: TimersDeps;

  constructor(deps: TimersDeps) {
    this.deps = deps;
  }

  /** Ends the connections past their deadline, publishes $SYS when due, sets the next alarm. */
  async alarm(now = Date.now()): Promise<void> {
    const { ctx, config, store, sockets, close } = this.deps;
    // The alarm that rang is set no more; one set meanwhile (scheduleCheck) is kept.
    this.alarmAt = null;
    let next = Number.POSITIVE_INFINITY;
    for (const ws of ctx.getWebSockets()) {
      const conn = sockets.of(ws);
      if (conn.finished) continue;
      const att = conn.att;
      if (att.phase === "awaiting-connect") {
        const deadline = att.openedAt + config.connectTimeout * 1000;
        if (deadline <= now) {
          log("info", "connect_timeout", { gateway: this.deps.name() });
          await close(conn, { kind: "connect-timeout" });
        } else next = Math.min(next, deadline);
        continue;
      }
      if (att.loginExpires !== undefined) {
        if (att.loginExpires <= now) {
          log("info", "login_expired", { gateway: this.deps.name(), clientId: att.clientId });
          await close(conn, { kind: "login-expired" });
          continue;
        }
        next = Math.min(next, att.loginExpires);
      }
      if (att.keepAlive === 0) continue;
      const deadline = conn.lastSeen + att.keepAlive * 1500;
      if (deadline <= now) await close(conn, { kind: "keep-alive" });
      else next = Math.min(next, deadline);
    }
    const held = await this.deps.handOffDue(now);
    if (held !== undefined) next = Math.min(next, held);
    if (store.hasSysSubscription()) {
      if (now >= this.sysDue) await this.publishSys();
      next = Math.min(next, this.sysDue);
    }
    if (next !== Number.POSITIVE_INFINITY) await this.scheduleCheck(next);
  }

  /** Makes sure the alarm fires no later than `at`. */
  async scheduleCheck(at: number): Promise<void> {
    if (this.alarmAt === undefined) {
      const current = await this.deps.ctx.storage.getAlarm();
      // Another check may have set it while storage answered.
      if (this.alarmAt === undefined) this.alarmAt = current;
    }
    if (this.alarmAt === null || this.alarmAt > at) await this.setAlarm(at);
  }

  /** Publishes $SYS topics to this gateway's subscribers of them, and plans the next round. */
  async publishSys(): Promise<void> {
    const { store, config } = this.deps;
    const now = Date.now();
    this.sysDue = now + config.sysInterval * 1000;
    let started = Number(store.getMeta("started") ?? 0);
    if (started === 0) {
      started = now;
      store.setMeta("started", String(now));
    }
    try {
      const stats = await this.deps.stats();
      await this.deps.deliver(sysMessages(stats, Math.floor((now - started) / 1000), now));
    } catch (err) {
      log("warn", "sys_failed", { gateway: this.deps.name(), error: String(err) });
    }
    await this.scheduleCheck(this.sysDue);
  }

  /** Sets the storage alarm: billed as a row written, so counted as one. */
  private async setAlarm(at: number): Promise<void> {
    this.deps.counters.add("rows_written");
    this.alarmAt = at;
    await this.deps.ctx.storage.setAlarm(at);
  }
}
