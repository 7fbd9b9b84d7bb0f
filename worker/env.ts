import type { BrokerEnv } from "../broker/config.ts";

import type {
  BridgeRpc,
  GatewayRpc,
  RegistryRpc,
  SessionRpc,
  ShardRpc,
  StatsHubRpc,
  UserShardRpc,
} from "../durable-objects/contracts.ts";

/** The bindings and vars of `wrangler.toml`. */
export interface Env extends BrokerEnv {
  // Typed by the contracts each class implements (durable-objects/contracts.ts).
  GATEWAY: DurableObjectNamespace<GatewayRpc>;
  TOPIC_SHARD: DurableObjectNamespace<ShardRpc>;
  SESSION: DurableObjectNamespace<SessionRpc>;
  REGISTRY: DurableObjectNamespace<RegistryRpc>;
  BRIDGE: DurableObjectNamespace<BridgeRpc>;
  USERS: DurableObjectNamespace<UserShardRpc>;
  STATS: DurableObjectNamespace<StatsHubRpc>;
  /** Shared secret of the NIMBUS-HMAC-SHA256 authentication method; unset disables it. */
  AUTH_HMAC_SECRET?: string;
  /** "true" lets clients connect without credentials. Off unless set (npm start sets it). */
  ALLOW_ANONYMOUS?: string;
  /** Password entries (`npm run passwd`), a secret. */
  MQTT_PASSWORDS?: string;
  /** HS256 key for JWTs in the password field, a secret. */
  JWT_SECRET?: string;
  /** A static JWKS (JSON) for RS256/ES256 tokens, or a URL to fetch one from. */
  JWKS?: string;
  JWKS_URL?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  /** The claim that names a token's principal; "sub" unless set. */
  JWT_IDENTITY_CLAIM?: string;
  /** ACL rules, JSON: [{"user": "alice" | "anonymous" | "*", "publish": [...], "subscribe": [...]}]. */
  ACL?: string;
  /** Bearer token of the HTTP API and /metrics, a secret; unset turns the API off. */
  API_TOKEN?: string;
}
