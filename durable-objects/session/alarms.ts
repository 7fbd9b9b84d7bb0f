/**
 * A parked session's alarm: its will, when the Will Delay Interval has passed
 * (5.0 3.1.3.2.2), and its end, when the session expires (3.1.1: configured;
 * 5.0: Session Expiry Interval). One alarm serves both, set for the sooner.
 */
import { log } from "../../broker/log.ts";

import { type Message, willMessage } from "../../broker/message.ts";

import type { Will } from "../../mqtt/index.ts";
import type { SessionRecord } from "./ownership.ts";

export interface SessionAlarmsDeps {
  writeRecord: (record: SessionRecord) => void;
  setAlarm: (at: number) => Promise<void>;
  /** Publishes a message at the shard of its topic. */
  publish: (message: Message) => Promise<unknown>;
}

export class SessionAlarms {
  private readonly deps: SessionAlarmsDeps;

  constructor(deps: SessionAlarmsDeps) {
    this.deps = deps;
  }

  /**
   * The client went offline: the session expires `expiry` seconds from now, and
   * its will, if any, is published after the delay or when the session ends,
   * whichever is first. Writes the record and sets the alarm.
   */
  async parked(record: SessionRecord, expiry: number, will: Will | undefined, now: number): Promise<void> {
    record.expiry = expiry;
    record.expiresAt = now + expiry * 1000;
    if (will !== undefined) {
      record.will = will;
      record.willAt = now + Math.min(will.properties?.willDelayInterval ?? 0, expiry) * 1000;
    }
    this.deps.writeRecord(record);
    await this.deps.setAlarm(Math.min(record.expiresAt, record.willAt ?? record.expiresAt));
  }

  /**
   * The alarm rang for an offline session: publishes its will if due, and sets
   * the alarm again if the session lives on. True when the session has expired
   * (the caller ends it).
   */
  async rang(record: SessionRecord, now: number): Promise<boolean> {
    if (record.will !== undefined && (record.willAt ?? 0) <= now) {
      const message = willMessage(record.clientId, record.will, now);
      await this.deps.publish(message);
      log("info", "will_published", { clientId: record.clientId, topic: message.topic, delayed: true });
      record.will = undefined;
      record.willAt = undefined;
      this.deps.writeRecord(record);
    }
    if (record.expiresAt > now) {
      await this.deps.setAlarm(record.expiresAt);
      return false;
    }
    return true;
  }
}
