/**
 * The subscriptions of this gateway's clients: in storage, and, but for shared
 * ones (a shard picks their member, Outbound.matchTarget), in the local index
 * that fan-out matches against. The one way one is added or removed.
 */
import type { SubscriptionOptions } from "../../broker/session-state.ts";
import { SubscriptionIndex } from "../../mqtt/index.ts";
import { isShared } from "../registration.ts";
import type { GatewayStore } from "./store.ts";

export class LocalSubscriptions {
  /** filter → clientId → options, for this gateway's clients only. */
  readonly index = new SubscriptionIndex<SubscriptionOptions>();
  private readonly store: GatewayStore;

  /** Loaded from storage (after an eviction or a restart). */
  constructor(store: GatewayStore) {
    this.store = store;
    for (const { clientId, filter, options } of store.allSubs())
      if (!isShared(filter)) this.index.add(filter, clientId, options);
  }

  add(clientId: string, filter: string, options: SubscriptionOptions): void {
    this.store.putSub(clientId, filter, options);
    if (!isShared(filter)) this.index.add(filter, clientId, options);
  }

  /** Whether the client had it. */
  remove(clientId: string, filter: string): boolean {
    this.index.remove(filter, clientId);
    return this.store.deleteSub(clientId, filter);
  }
}
