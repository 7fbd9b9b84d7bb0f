/** The numbers objects report for /api/stats, /metrics and $SYS. */
export type GatewayCounter =
  | "messages_in"
  | "bytes_in"
  | "messages_out"
  | "bytes_out"
  | "dropped"
  | "expired";
export type ShardCounter = "messages_routed" | "deliveries" | "retained_refused" | "retained_expired";

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
  counters: Partial<Record<ShardCounter, number>>;
}

export interface BrokerStats {
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
  gateways: GatewayStats[];
  shards: ShardStats[];
}

export function aggregate(gateways: GatewayStats[], shards: ShardStats[]): BrokerStats {
  const g = (k: keyof GatewayStats["counters"]) => gateways.reduce((n, s) => n + (s.counters[k] ?? 0), 0);
  const sh = (k: keyof ShardStats["counters"]) => shards.reduce((n, s) => n + (s.counters[k] ?? 0), 0);
  return {
    connections: gateways.reduce((n, s) => n + s.connections, 0),
    subscriptions: gateways.reduce((n, s) => n + s.subscriptions, 0),
    messagesIn: g("messages_in"),
    bytesIn: g("bytes_in"),
    messagesOut: g("messages_out"),
    bytesOut: g("bytes_out"),
    retained: shards.reduce((n, s) => n + s.retained, 0),
    retainedBytes: shards.reduce((n, s) => n + s.retainedBytes, 0),
    dropped: g("dropped") + sh("retained_refused"),
    expired: g("expired") + sh("retained_expired"),
    gateways,
    shards,
  };
}
