import type { BrokerEnv } from "../broker/config.ts";
import type { Bridge } from "../durable-objects/bridge.ts";
import type { Gateway } from "../durable-objects/gateway.ts";
import type { Registry } from "../durable-objects/registry.ts";
import type { Session } from "../durable-objects/session.ts";
import type { TopicShard } from "../durable-objects/topic-shard.ts";
import type { UserShard } from "../durable-objects/user-shard.ts";

/** The bindings and vars of `wrangler.toml`. */
export interface Env extends BrokerEnv {
  GATEWAY: DurableObjectNamespace<Gateway>;
  TOPIC_SHARD: DurableObjectNamespace<TopicShard>;
  SESSION: DurableObjectNamespace<Session>;
  REGISTRY: DurableObjectNamespace<Registry>;
  BRIDGE: DurableObjectNamespace<Bridge>;
  USERS: DurableObjectNamespace<UserShard>;
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
