import type { BrokerEnv } from "../broker/config.ts";
import type { Gateway } from "../durable-objects/gateway.ts";
import type { Session } from "../durable-objects/session.ts";
import type { TopicShard } from "../durable-objects/topic-shard.ts";

/** The bindings and vars of `wrangler.toml`. */
export interface Env extends BrokerEnv {
  GATEWAY: DurableObjectNamespace<Gateway>;
  TOPIC_SHARD: DurableObjectNamespace<TopicShard>;
  SESSION: DurableObjectNamespace<Session>;
  /** Shared secret of the NIMBUS-HMAC-SHA256 authentication method; unset disables it. */
  AUTH_HMAC_SECRET?: string;
}
