/**
 * Broker settings, read from `wrangler.toml` [vars] (all strings there). Every
 * setting has a safe default so a missing var never breaks the broker.
 */
import { CLIENT_ID_LENGTH_LIMIT } from "./client-ids.ts";

export interface BrokerEnv {
  TOPIC_SHARDS?: string;
  SHARD_LEVELS?: string;
  GATEWAYS?: string;
  GATEWAY_POLICY?: string;
  MAX_PACKET_SIZE?: string;
  MAX_INFLIGHT?: string;
  MAX_QUEUED_MESSAGES?: string;
  SESSION_EXPIRY_DEFAULT?: string;
  MAX_SESSION_EXPIRY?: string;
  CONNECT_TIMEOUT?: string;
  MAX_KEEP_ALIVE?: string;
  TOPIC_ALIAS_MAXIMUM?: string;
  MAX_SUBSCRIPTIONS?: string;
  MAX_TOPIC_LENGTH?: string;
  MAX_TOPIC_LEVELS?: string;
  MAX_RETAINED_MESSAGES?: string;
  MAX_RETAINED_BYTES?: string;
  MAX_CONNECTIONS_PER_GATEWAY?: string;
  PUBLISH_RATE?: string;
  PUBLISH_BURST?: string;
  ALLOWED_ORIGINS?: string;
  SYS_INTERVAL?: string;
  MAX_CLIENT_ID_LENGTH?: string;
  CLIENT_ID_PATTERN?: string;
  AUTH_FAILURES_PER_MINUTE?: string;
  AUTH_FAILURES_PER_MINUTE_GATEWAY?: string;
  /** debug, info (default), warn or error. */
  LOG_LEVEL?: string;
}

export type GatewayPolicy = "random" | "ip";

export interface BrokerConfig {
  topicShards: number;
  shardLevels: number;
  gateways: number;
  gatewayPolicy: GatewayPolicy;
  /** Largest packet accepted from a client, bytes. */
  maxPacketSize: number;
  /** Unacknowledged QoS 1/2 messages out to one client at once. */
  maxInflight: number;
  /** QoS 1/2 messages kept for one offline session; newer ones are dropped past it. */
  maxQueuedMessages: number;
  /** Seconds a 3.1.1 persistent session (clean session 0) lives while offline. */
  sessionExpiryDefault: number;
  /** Upper bound on a 5.0 client's Session Expiry Interval, seconds. */
  maxSessionExpiry: number;
  /** Seconds a socket may stay open without sending CONNECT. */
  connectTimeout: number;
  /** Largest keep-alive accepted; 0 lets clients disable it. */
  maxKeepAlive: number;
  /** Topic aliases a 5.0 client may use towards the broker (0 disables them). */
  topicAliasMaximum: number;
  /** Subscriptions one session may hold; more are refused with 0x97 Quota exceeded. */
  maxSubscriptions: number;
  /** Longest topic name or filter, bytes, and most levels. */
  maxTopicLength: number;
  maxTopicLevels: number;
  /** Retained messages one shard keeps, by count and by payload bytes. */
  maxRetainedMessages: number;
  maxRetainedBytes: number;
  /** Sockets one gateway holds; more upgrades get 503. */
  maxConnectionsPerGateway: number;
  /** PUBLISH packets per second one connection may send (token bucket), and the burst. */
  publishRate: number;
  publishBurst: number;
  /** Origins allowed to open a WebSocket; empty allows any. */
  allowedOrigins: string[];
  /** Seconds between $SYS publications, while anyone subscribes to them. */
  sysInterval: number;
  /** Longest client id, UTF-8 bytes (it is kept in the 2,048-byte attachment). */
  maxClientId: number;
  /** Client ids a principal may use: `*` any characters, `%u` its name; unset allows any. */
  clientIdPattern: string | undefined;
  /** Failed authentications allowed per minute from one address, and per gateway. */
  authFailuresPerAddress: number;
  authFailuresPerGateway: number;
}

function int(value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) return fallback;
  return n;
}

export function readConfig(env: BrokerEnv): BrokerConfig {
  return {
    topicShards: int(env.TOPIC_SHARDS, 1, 1, 1024),
    shardLevels: int(env.SHARD_LEVELS, 1, 1, 16),
    gateways: int(env.GATEWAYS, 1, 1, 4096),
    gatewayPolicy: env.GATEWAY_POLICY === "ip" ? "ip" : "random",
    maxPacketSize: int(env.MAX_PACKET_SIZE, 1024 * 1024, 64, 32 * 1024 * 1024),
    maxInflight: int(env.MAX_INFLIGHT, 100, 1, 65535),
    maxQueuedMessages: int(env.MAX_QUEUED_MESSAGES, 1000, 0, 1_000_000),
    sessionExpiryDefault: int(env.SESSION_EXPIRY_DEFAULT, 14 * 24 * 3600, 0, 0xffffffff),
    maxSessionExpiry: int(env.MAX_SESSION_EXPIRY, 14 * 24 * 3600, 0, 0xffffffff),
    connectTimeout: int(env.CONNECT_TIMEOUT, 10, 1, 3600),
    maxKeepAlive: int(env.MAX_KEEP_ALIVE, 65535, 1, 65535),
    topicAliasMaximum: int(env.TOPIC_ALIAS_MAXIMUM, 64, 0, 65535),
    maxSubscriptions: int(env.MAX_SUBSCRIPTIONS, 1000, 1, 1_000_000),
    maxTopicLength: int(env.MAX_TOPIC_LENGTH, 1024, 1, 65535),
    maxTopicLevels: int(env.MAX_TOPIC_LEVELS, 32, 1, 65535),
    maxRetainedMessages: int(env.MAX_RETAINED_MESSAGES, 100_000, 0, 100_000_000),
    maxRetainedBytes: int(env.MAX_RETAINED_BYTES, 256 * 1024 * 1024, 0, 8 * 1024 * 1024 * 1024),
    maxConnectionsPerGateway: int(env.MAX_CONNECTIONS_PER_GATEWAY, 10_000, 1, 1_000_000),
    publishRate: int(env.PUBLISH_RATE, 1000, 1, 1_000_000),
    publishBurst: int(env.PUBLISH_BURST, 2000, 1, 10_000_000),
    sysInterval: int(env.SYS_INTERVAL, 10, 1, 86_400),
    maxClientId: int(env.MAX_CLIENT_ID_LENGTH, 256, 1, CLIENT_ID_LENGTH_LIMIT),
    clientIdPattern: env.CLIENT_ID_PATTERN?.trim() ? env.CLIENT_ID_PATTERN.trim() : undefined,
    authFailuresPerAddress: int(env.AUTH_FAILURES_PER_MINUTE, 10, 1, 1_000_000),
    authFailuresPerGateway: int(env.AUTH_FAILURES_PER_MINUTE_GATEWAY, 600, 1, 10_000_000),
    allowedOrigins: (env.ALLOWED_ORIGINS ?? "")
      .split(",")
      .map((o) => o.trim())
      .filter((o) => o !== ""),
  };
}
