/**
 * Delivery from a shard to its destinations: messages for one destination are
 * batched (a call's worth, MESSAGE_BATCH) and handed over in one call per batch,
 * through one stub per destination, so calls on it arrive in order (invariant 3):
 * `deliver` on a gateway or a bridge, `enqueue` on a session.
 */
import { KeyedBatcher } from "../../broker/batcher.ts";

import { log } from "../../broker/log.ts";

import { MESSAGE_BATCH, type Message, RPC_BATCH_BYTES } from "../../broker/message.ts";

import type { Destination } from "../../broker/routing.ts";

/**
 * QoS 0 messages waiting for one destination (a call's worth): past it, more
 * QoS 0 for that destination is dropped and counted (docs/limits.md).
 */
export const SHARD_QOS0_BYTES = RPC_BATCH_BYTES;

/** Hands a batch to a destination. */
export type DeliveryStub = (messages: Message[]) => Promise<void>;

export interface DeliveryDeps {
  /** The stub for a destination (made once per destination). */
  stubFor: (destination: Destination) => DeliveryStub;
  /** Counts a delivery call, and a QoS 0 message dropped for a destination that does not keep up. */
  count: (name: "deliveries" | "dropped_overload") => void;
}

export class Delivery {
  private readonly deps: DeliveryDeps;
  /** One stub per destination: calls on one stub arrive in order (invariant 3). */
  private readonly stubs = new Map<Destination, DeliveryStub>();
  private readonly batcher: KeyedBatcher<Destination, Message, undefined>;

  constructor(deps: DeliveryDeps) {
    this.deps = deps;
    this.batcher = new KeyedBatcher((dest, messages) => this.deliverTo(dest, messages), MESSAGE_BATCH);
  }

  /** Hands a message to a destination; resolves once the destination has taken it. */
  add(destination: Destination, message: Message): Promise<undefined> {
    return this.batcher.add(destination, message);
  }

  /**
   * Hands a publish to a destination. QoS 0 promises nothing once handed on: the
   * publisher need not wait for it (order still holds, the per-destination queue
   * keeps it). So nothing holds QoS 0 back but this: past SHARD_QOS0_BYTES
   * waiting for a destination that does not keep up, it is dropped for that
   * destination and counted. QoS 1/2 waits, and its publisher's acknowledgement
   * with it: its promise is added to `pending`.
   */
  send(destination: Destination, message: Message, pending: Promise<undefined>[]): void {
    if (message.qos > 0) {
      pending.push(this.batcher.add(destination, message));
    } else if (this.batcher.pendingBytesOf(destination) >= SHARD_QOS0_BYTES) {
      this.deps.count("dropped_overload");
    } else {
      this.batcher.add(destination, message).catch(() => undefined);
    }
  }

  /** Hands a batch to a destination; no result per message. */
  private async deliverTo(destination: Destination, messages: Message[]): Promise<undefined> {
    try {
      this.deps.count("deliveries");
      await this.stub(destination)(messages);
    } catch (err) {
      log("error", "delivery_failed", { destination, count: messages.length, error: String(err) });
      // The publisher of a QoS 1/2 message must not be acknowledged.
      if (messages.some((m) => m.qos > 0)) throw err;
    }
    return undefined;
  }

  private stub(destination: Destination): DeliveryStub {
    let stub = this.stubs.get(destination);
    if (stub === undefined) {
      stub = this.deps.stubFor(destination);
      this.stubs.set(destination, stub);
    }
    return stub;
  }
}
