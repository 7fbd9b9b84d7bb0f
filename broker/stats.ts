import type { Billing } from "./billing.ts";
import type { RuleCounts } from "./rules.ts";

export type { Billing };
/** The numbers objects report for /api/stats, /metrics and $SYS. */
export type GatewayCounter =
  | "messages_in"
  | "bytes_in"
  | "messages_out"
  | "bytes_out"
  /** Too large for the client's Maximum Packet Size (MQTT-3.1.2-25). */
  | "dropped"
  /** QoS 1/2 for an online client with MAX_QUEUED_MESSAGES waiting already. */
  | "dropped_queue_full"
  /** QoS 0 past what a client that does not keep up may be sent (OUTBOUND_QOS0_RATE). */
  | "dropped_qos0"
  /** QoS 0 received over its client's PUBLISH_RATE. */
  | "dropped_rate"
  /** QoS 0 received while a window of messages is on its way to the shards already (inbound.ts). */
  | "dropped_overload"
  | "expired"
  // what Cloudflare bills: WebSocket upgrades and alarms received, calls received
  // from other objects, calls made to sessions (which keep no counters of their
  // own), incoming WebSocket messages, SQLite rows written
  | "fetches"
  | "alarms"
  | "rpc_in"
  | "session_calls"
  /** Calls made to registries (connects of every client, clean sessions' ends), and their rows. */
  | "registry_calls"
  | "registry_rows"
  | "ws_in"
  | "rows_written"
  // what the sessions this gateway called reported of their own work
  | "session_rows"
  | "session_alarms"
  /** Password logins: full PBKDF2 checks (decoys included), and logins a verifier accepted in one HMAC. */
  | "logins_full_check"
  | "logins_verifier"
  // log lines written (Workers Logs bills each)
  | "log_lines";
export type ShardCounter =
  | "messages_routed"
  /** Delivery calls made to gateways and sessions. */
  | "deliveries"
  | "retained_refused"
  | "retained_expired"
  /** QoS 0 not delivered: SHARD_QOS0_BYTES were waiting for its destination already. */
  | "dropped_overload"
  /** Rows (routes, group members, retained messages) other shards handed over in a re-shard. */
  | "rows_received"
  // billed, as for gateways
  | "rpc_in"
  | "session_calls"
  | "rows_written"
  | "session_rows"
  | "session_alarms"
  | "log_lines";

export interface GatewayStats {
  gateway: string;
  connections: number;
  sockets: number;
  subscriptions: number;
  counters: Partial<Record<GatewayCounter, number>>;
}

export interface ShardStats {
  shard: string;
  routes: number;
  retained: number;
  retainedBytes: number;
  /** The layout version whose rows this shard holds, and whether it is still receiving a newer one's. */
  layout: { version: number; resharding: boolean };
  /** Per rule: matched, sent, failed, dead-lettered, dropped (QoS 0), pending in the outbox. */
  rules: Record<string, RuleCounts>;
  counters: Partial<Record<ShardCounter, number>>;
}

export interface BrokerStats {
  billing: Billing;
  connections: number;
  subscriptions: number;
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  retained: number;
  retainedBytes: number;
  dropped: number;
  expired: number;
  /** Per rule, summed over the shards. */
  rules: Record<string, RuleCounts>;
  gateways: GatewayStats[];
  shards: ShardStats[];
}

export function aggregate(gateways: GatewayStats[], shards: ShardStats[]): BrokerStats {
  const g = (k: keyof GatewayStats["counters"]) => gateways.reduce((n, s) => n + (s.counters[k] ?? 0), 0);
  const sh = (k: keyof ShardStats["counters"]) => shards.reduce((n, s) => n + (s.counters[k] ?? 0), 0);
  return {
    billing: {
      requests:
        g("fetches") +
        g("alarms") +
        g("rpc_in") +
        g("session_calls") +
        g("registry_calls") +
        g("session_alarms") +
        sh("rpc_in") +
        sh("session_calls") +
        sh("session_alarms"),
      wsMessagesIn: g("ws_in"),
      rowsWritten:
        g("rows_written") + g("session_rows") + g("registry_rows") + sh("rows_written") + sh("session_rows"),
      logLines: g("log_lines") + sh("log_lines"),
    },
    connections: gateways.reduce((n, s) => n + s.connections, 0),
    subscriptions: gateways.reduce((n, s) => n + s.subscriptions, 0),
    messagesIn: g("messages_in"),
    bytesIn: g("bytes_in"),
    messagesOut: g("messages_out"),
    bytesOut: g("bytes_out"),
    retained: shards.reduce((n, s) => n + s.retained, 0),
    retainedBytes: shards.reduce((n, s) => n + s.retainedBytes, 0),
    dropped:
      g("dropped") +
      g("dropped_queue_full") +
      g("dropped_qos0") +
      g("dropped_rate") +
      g("dropped_overload") +
      sh("dropped_overload") +
      sh("retained_refused"),
    expired: g("expired") + sh("retained_expired"),
    rules: sumRules(shards),
    gateways,
    shards,
  };
}

/** Every shard runs every rule on its own topics: a rule's counts are the shards' summed. */
function sumRules(shards: ShardStats[]): Record<string, RuleCounts> {
  const out: Record<string, RuleCounts> = {};
  for (const s of shards) {
    for (const [name, c] of Object.entries(s.rules)) {
      const to = out[name] ?? { matched: 0, sent: 0, failed: 0, dead: 0, dropped: 0, pending: 0 };
      out[name] = to;
      for (const k of Object.keys(c) as Array<keyof RuleCounts>) to[k] += c[k];
    }
  }
  return out;
}
