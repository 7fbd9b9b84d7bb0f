/**
 * Broker settings, read from `wrangler.toml` [vars] (all strings there). Every
 * setting has a safe default so a missing var never breaks the broker.
 */

import { type AclEntry, parseAcl } from "./acl.ts";
import { MIN_PEPPER_BYTES } from "./auth/login-verifier.ts";
import { readUpgradeLoginSettings, type UpgradeLoginEnv } from "./auth/upgrade-logins.ts";
import { MESSAGE_SPACING_MS } from "./batcher.ts";
import { type BridgeConfig, parseBridges } from "./bridges.ts";
import { CLIENT_ID_LENGTH_LIMIT } from "./client-ids.ts";
import { type GatewayPlacement, parseGatewayRegions } from "./gateways.ts";
import type { PresenceSettings } from "./presence.ts";
import { type Layout, layoutOf } from "./routing.ts";
import { parseRules, type Rule } from "./rules.ts";

/** The vars and secrets of wrangler.toml the broker reads (the upgrade's logins' among them). */
export interface BrokerEnv extends UpgradeLoginEnv {
  TOPIC_SHARDS?: string;
  SHARD_LEVELS?: string;
  GATEWAYS?: string;
  GATEWAY_POLICY?: string;
  /** With GATEWAY_POLICY=region: the regions that have gateways, e.g. "enam:8,weur:4,oc" (gateways.ts). */
  GATEWAY_REGIONS?: string;
  /** Calls one request may make to other objects: the plan's subrequest limit (SUBREQUESTS_FREE). */
  SUBREQUEST_LIMIT?: string;
  MAX_PACKET_SIZE?: string;
  MAX_INFLIGHT?: string;
  RECEIVE_MAXIMUM?: string;
  PUBLISH_SPACING_MS?: string;
  RESUME_GRACE_MS?: string;
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
  SUBSCRIBE_RATE?: string;
  SUBSCRIBE_BURST?: string;
  OUTBOUND_QOS0_RATE?: string;
  SYS_INTERVAL?: string;
  MAX_CLIENT_ID_LENGTH?: string;
  CLIENT_ID_PATTERN?: string;
  AUTH_FAILURES_PER_MINUTE?: string;
  AUTH_FAILURES_PER_MINUTE_NETWORK?: string;
  AUTH_FAILURES_PER_MINUTE_GATEWAY?: string;
  /** Secret key of login verifiers (login-verifier.ts), a secret; unset: every login checks in full. */
  AUTH_PEPPER?: string;
  /** The pepper before a rotation: its verifiers still count, and are made again with the new one. */
  AUTH_PEPPER_PREVIOUS?: string;
  /** debug, info (default), warn or error. */
  LOG_LEVEL?: string;
  /** Rules (JSON): what leaves the broker for Queues, webhooks and other Workers (rules.ts). */
  RULES?: string;
  RULES_OUTBOX_BYTES?: string;
  /** Bridges to other MQTT brokers (JSON, bridges.ts). */
  BRIDGES?: string;
  /** ACL rules (JSON, acl.ts): [{"user": "alice" | "anonymous" | "*", "publish": [...], "subscribe": [...]}]. */
  ACL?: string;
  /** "true": $SYS/presence/ events at each connect and disconnect (presence.ts). */
  PRESENCE?: string;
  /** "true": presence events carry the client's address. */
  PRESENCE_ADDRESS?: string;
}

export interface BrokerConfig {
  /** ACL, checked: rules by principal; undefined when unset (every topic open but `$SYS/`). */
  acl: AclEntry[] | undefined;
  /** RULES, checked: what leaves the broker for other systems. */
  rules: Rule[];
  /** BRIDGES, checked: other MQTT brokers topics are carried to and from. */
  bridges: BridgeConfig[];
  /** Bytes of QoS 1/2 messages waiting for rules' targets, per shard; past it they are dead-lettered. */
  rulesOutboxBytes: number;
  /** TOPIC_SHARDS and SHARD_LEVELS: how topics are spread over the shards. */
  layout: Layout;
  /** Gateway objects in all: GATEWAYS, or under GATEWAY_POLICY=region the sum over GATEWAY_REGIONS. */
  gateways: number;
  /** How an upgrade picks its gateway, and (region) which gateways there are (gateways.ts). */
  placement: GatewayPlacement;
  /**
   * Calls one request may make to other objects (SUBREQUEST_LIMIT): what a
   * fan-out to every gateway and shard from one request must stay within.
   */
  subrequestLimit: number;
  /** Largest packet accepted from a client, bytes. */
  maxPacketSize: number;
  /** Unacknowledged QoS 1/2 messages out to one client at once. */
  maxInflight: number;
  /**
   * Unacknowledged QoS 1/2 PUBLISH one client may send us (5.0 Receive Maximum,
   * sent in CONNACK when below 65,535; the same bound for 3.1.1); past it the
   * connection ends (0x93).
   */
  receiveMaximum: number;
  /**
   * The least time between the starts of two publish calls from a gateway to one
   * shard (ms, batcher.ts); 0: a call as soon as the last one has answered.
   */
  publishSpacingMs: number;
  /** QoS 1/2 messages kept for one offline session; newer ones are dropped past it. */
  maxQueuedMessages: number;
  /**
   * How long (ms) a restarted gateway holds the persistent sessions whose sockets the
   * restart closed, for their clients to come back to it and resume them where they
   * are (gateway/handover.ts); 0: parked at their Sessions at once.
   */
  resumeGraceMs: number;
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
  /**
   * SUBSCRIBE and UNSUBSCRIBE packets a second one connection may send (token
   * bucket), and the burst; past it the next one waits for its token.
   */
  subscribeRate: number;
  subscribeBurst: number;
  /**
   * Bytes of QoS 0 a second one client may be sent, with a burst of 4 s worth:
   * past it QoS 0 to that client is dropped and counted (Outbound.deliver).
   */
  outboundQos0Rate: number;
  /** Origins allowed to open a WebSocket; empty allows any. */
  allowedOrigins: string[];
  /** Seconds between $SYS publications, while anyone subscribes to them. */
  sysInterval: number;
  /** Longest client id, UTF-8 bytes (it is kept in the 2,048-byte attachment). */
  maxClientId: number;
  /** Client ids a principal may use: `*` any characters, `%u` its name; unset allows any. */
  clientIdPattern: string | undefined;
  /**
   * Failed authentications allowed per minute from one source (IPv4 address,
   * IPv6 /64), from one network (IPv4 /24, IPv6 /48), and failed password checks
   * per gateway (auth/throttle.ts).
   */
  authFailuresPerAddress: number;
  authFailuresPerNetwork: number;
  authFailuresPerGateway: number;
  /** PRESENCE and PRESENCE_ADDRESS: connected and disconnected events under `$SYS/presence/`. */
  presence: PresenceSettings;
}

/**
 * Platform limits a setting may not pass (DESIGN.md, platform facts): a stored
 * message is one SQLite row, at most 2 MB on Cloudflare, with room kept for its
 * topic and properties; one object accepts at most 32,768 WebSockets.
 */
export const MAX_PACKET_SIZE_LIMIT = 1_900_000;
export const MAX_CONNECTIONS_LIMIT = 32_768;

/**
 * Subrequests one invocation may make (Cloudflare's Workers limits page and its
 * changelog of 2026-02-11, read 2026-12-03): a call to a Durable Object is one, for
 * the caller (the callee has a budget of its own). Workers Free: 1,000 calls to
 * Cloudflare services (and 50 to the Internet); Paid: 10,000 by default, up to
 * 10 million with `[limits] subrequests` in wrangler.toml. The default holds on
 * every plan; SUBREQUEST_LIMIT says what the account has.
 */
export const SUBREQUESTS_FREE = 1_000;
export const SUBREQUESTS_PAID_DEFAULT = 10_000;
export const SUBREQUESTS_MAX = 10_000_000;
/** Objects of a class, each on its own: more would be no use before a fan-out to them is paged. */
export const MAX_GATEWAYS = 4096;
export const MAX_TOPIC_SHARDS = 1024;

/** Settings that cannot be used: the Worker answers 500 with them, and objects do not start. */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`Nimbus configuration: ${problems.join("; ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Reads whole-number settings; one out of range is a problem, not silently replaced. */
class Ints {
  readonly problems: string[] = [];
  private readonly env: BrokerEnv;

  constructor(env: BrokerEnv) {
    this.env = env;
  }

  get(name: keyof BrokerEnv, fallback: number, min: number, max: number, why = ""): number {
    const value = this.env[name];
    if (value === undefined || value.trim() === "") return fallback;
    const n = Number(value);
    if (Number.isInteger(n) && n >= min && n <= max) return n;
    this.problems.push(`${name}=${value} is not a whole number from ${min} to ${max}${why}`);
    return fallback;
  }
}

/** readConfig's answer for each env object this isolate was given (the runtime passes the same one to every request). */
const configs = new WeakMap<object, BrokerConfig | ConfigError>();

/**
 * readConfig, once per env object: the Worker reads the settings at every request,
 * and a reconnect storm is thousands of upgrades a second (reading them costed
 * about 0.5 ms of each under wrangler dev). Throws the same ConfigError each time.
 */
export function configFor(env: BrokerEnv): BrokerConfig {
  let known = configs.get(env);
  if (known === undefined) {
    try {
      known = readConfig(env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      known = err;
    }
    configs.set(env, known);
  }
  if (known instanceof ConfigError) throw known;
  return known;
}

/** The settings, checked; throws ConfigError listing every setting that cannot be used. */
export function readConfig(env: BrokerEnv): BrokerConfig {
  const ints = new Ints(env);
  const int = (name: keyof BrokerEnv, fallback: number, min: number, max: number, why?: string) =>
    ints.get(name, fallback, min, max, why);
  const config: BrokerConfig = {
    layout: layoutOf({
      topicShards: int("TOPIC_SHARDS", 1, 1, MAX_TOPIC_SHARDS),
      shardLevels: int("SHARD_LEVELS", 1, 1, 16),
    }),
    gateways: int("GATEWAYS", 1, 1, MAX_GATEWAYS),
    placement: { policy: "random" },
    subrequestLimit: int(
      "SUBREQUEST_LIMIT",
      SUBREQUESTS_FREE,
      1,
      SUBREQUESTS_MAX,
      " (Workers Free: 1,000 calls to Cloudflare services a request; Paid: 10,000, or what [limits] subrequests says)",
    ),
    maxPacketSize: int(
      "MAX_PACKET_SIZE",
      1024 * 1024,
      64,
      MAX_PACKET_SIZE_LIMIT,
      " (a stored message is one SQLite row, at most 2 MB on Cloudflare)",
    ),
    maxInflight: int("MAX_INFLIGHT", 100, 1, 65535),
    // The specification's default (no limit but the packet ids): MQTT.js does not
    // keep to a server's Receive Maximum, so a burst of its publishes would be a
    // violation to disconnect. What bounds a client is its bytes (inbound.ts).
    receiveMaximum: int("RECEIVE_MAXIMUM", 65535, 1, 65535),
    publishSpacingMs: int("PUBLISH_SPACING_MS", MESSAGE_SPACING_MS, 0, 1000),
    maxQueuedMessages: int("MAX_QUEUED_MESSAGES", 1000, 0, 1_000_000),
    // 30 s: a deploy's clients are back within it (MQTT.js retries after 1 s). It was
    // off for a while after e2e reshard lost an acknowledged message once; the cause was
    // a message appended to a Session behind the last page of its client's queue
    // (connect-session.ts takeQueue, runtime queue-race), not resuming.
    resumeGraceMs: int("RESUME_GRACE_MS", 30_000, 0, 600_000),
    sessionExpiryDefault: int("SESSION_EXPIRY_DEFAULT", 14 * 24 * 3600, 0, 0xffffffff),
    maxSessionExpiry: int("MAX_SESSION_EXPIRY", 14 * 24 * 3600, 0, 0xffffffff),
    connectTimeout: int("CONNECT_TIMEOUT", 10, 1, 3600),
    maxKeepAlive: int("MAX_KEEP_ALIVE", 65535, 1, 65535),
    topicAliasMaximum: int("TOPIC_ALIAS_MAXIMUM", 64, 0, 65535),
    maxSubscriptions: int("MAX_SUBSCRIPTIONS", 1000, 1, 1_000_000),
    maxTopicLength: int("MAX_TOPIC_LENGTH", 1024, 1, 65535),
    maxTopicLevels: int("MAX_TOPIC_LEVELS", 32, 1, 65535),
    maxRetainedMessages: int("MAX_RETAINED_MESSAGES", 100_000, 0, 100_000_000),
    maxRetainedBytes: int("MAX_RETAINED_BYTES", 256 * 1024 * 1024, 0, 8 * 1024 * 1024 * 1024),
    maxConnectionsPerGateway: int(
      "MAX_CONNECTIONS_PER_GATEWAY",
      10_000,
      1,
      MAX_CONNECTIONS_LIMIT,
      " (one Durable Object accepts at most 32,768 WebSockets)",
    ),
    // As AWS IoT Core allows a connection: 100 publishes a second. Past it a client
    // is slowed down (its acknowledgements wait), as EMQX's and HiveMQ's limiters do.
    publishRate: int("PUBLISH_RATE", 100, 1, 1_000_000),
    publishBurst: int("PUBLISH_BURST", 200, 1, 10_000_000),
    // Each SUBSCRIBE writes rows, calls shards and may send retained messages
    // again (Retain Handling 0): 10 a second after a burst of 100 (a client's
    // start-up subscriptions), shaped like PUBLISH, not refused.
    subscribeRate: int("SUBSCRIBE_RATE", 10, 1, 1_000_000),
    subscribeBurst: int("SUBSCRIBE_BURST", 100, 1, 10_000_000),
    outboundQos0Rate: int("OUTBOUND_QOS0_RATE", 4 * 2 ** 20, 1024, 2 ** 31),
    sysInterval: int("SYS_INTERVAL", 10, 1, 86_400),
    maxClientId: int(
      "MAX_CLIENT_ID_LENGTH",
      256,
      1,
      CLIENT_ID_LENGTH_LIMIT,
      " (a client id is kept in the 2,048-byte WebSocket attachment)",
    ),
    clientIdPattern: env.CLIENT_ID_PATTERN?.trim() ? env.CLIENT_ID_PATTERN.trim() : undefined,
    authFailuresPerAddress: int("AUTH_FAILURES_PER_MINUTE", 10, 1, 1_000_000),
    authFailuresPerNetwork: int("AUTH_FAILURES_PER_MINUTE_NETWORK", 100, 1, 10_000_000),
    authFailuresPerGateway: int("AUTH_FAILURES_PER_MINUTE_GATEWAY", 600, 1, 10_000_000),
    presence: { enabled: false, address: false },
    acl: undefined,
    rules: [],
    bridges: [],
    rulesOutboxBytes: int("RULES_OUTBOX_BYTES", 256 * 1024 * 1024, 0, 8 * 1024 * 1024 * 1024),
    allowedOrigins: (env.ALLOWED_ORIGINS ?? "")
      .split(",")
      .map((o) => o.trim())
      .filter((o) => o !== ""),
  };
  const { rules, problems } = parseRules(env.RULES);
  config.rules = rules;
  problems.push(...placeGateways(env, config));
  // One identity provider's keys sign every tenant's tokens: the issuer and
  // audience are what say a token is for this broker.
  if (env.JWKS_URL?.trim() && (!env.JWT_ISSUER?.trim() || !env.JWT_AUDIENCE?.trim()))
    problems.push("JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE (else any tenant of the provider gets in)");
  const flag = (name: "PRESENCE" | "PRESENCE_ADDRESS") => {
    const value = env[name]?.trim();
    if (value === undefined || value === "" || value === "false") return false;
    if (value === "true") return true;
    problems.push(`${name}=${value} is neither true nor false`);
    return false;
  };
  config.presence = { enabled: flag("PRESENCE"), address: flag("PRESENCE_ADDRESS") };
  problems.push(...readUpgradeLoginSettings(env).problems);
  const acl = parseAcl(env.ACL);
  config.acl = acl.entries;
  problems.push(...acl.problems);
  const bridged = parseBridges(env.BRIDGES);
  config.bridges = bridged.bridges;
  problems.push(...bridged.problems);
  const bindings = env as Record<string, unknown>;
  for (const r of rules) {
    const t = r.target;
    // A binding or secret a rule names must be there: wrangler.toml's queues and services, secrets.
    if (t.kind !== "webhook" && bindings[t.binding] === undefined)
      problems.push(`rule "${r.name}": no binding ${t.binding} (declare it in wrangler.toml)`);
    if (t.kind === "webhook" && t.secret !== undefined && typeof bindings[t.secret] !== "string")
      problems.push(`rule "${r.name}": no secret ${t.secret} (wrangler secret put ${t.secret})`);
  }
  for (const b of config.bridges) {
    if (b.passwordSecret !== undefined && typeof bindings[b.passwordSecret] !== "string")
      problems.push(
        `bridge "${b.name}": no secret ${b.passwordSecret} (wrangler secret put ${b.passwordSecret})`,
      );
  }
  for (const name of ["AUTH_PEPPER", "AUTH_PEPPER_PREVIOUS"] as const) {
    const pepper = env[name];
    // A short pepper could be found from one verifier of a password the finder knows.
    if (pepper && new TextEncoder().encode(pepper).length < MIN_PEPPER_BYTES)
      problems.push(`${name} has fewer than ${MIN_PEPPER_BYTES} bytes (openssl rand -base64 32)`);
  }
  const all = [...ints.problems, ...problems];
  if (all.length > 0) throw new ConfigError(all);
  return config;
}

/**
 * GATEWAY_POLICY and GATEWAY_REGIONS into `config.placement` (and, for regions,
 * the total into `config.gateways`); the problems. Then the bound every request
 * that calls all gateways and all shards (statistics for /api/stats, /metrics and
 * $SYS) must keep: one call each, within the plan's subrequest limit.
 */
function placeGateways(env: BrokerEnv, config: BrokerConfig): string[] {
  const problems: string[] = [];
  const policy = env.GATEWAY_POLICY?.trim() || "random";
  const listed = env.GATEWAY_REGIONS?.trim() ?? "";
  if (policy === "random" || policy === "ip") {
    config.placement = { policy };
    if (listed !== "")
      problems.push(`GATEWAY_REGIONS is used only with GATEWAY_POLICY=region (it is ${policy})`);
  } else if (policy === "region") {
    const parsed = parseGatewayRegions(listed, config.gateways, MAX_GATEWAYS);
    if (listed === "") problems.push("GATEWAY_POLICY=region needs GATEWAY_REGIONS (e.g. enam:4,weur:4,oc:1)");
    else problems.push(...parsed.problems);
    const [first, ...rest] = parsed.regions;
    if (first !== undefined && parsed.problems.length === 0) {
      config.placement = { policy, regions: [first, ...rest] };
      config.gateways = parsed.regions.reduce((sum, r) => sum + r.gateways, 0);
      if (config.gateways > MAX_GATEWAYS)
        problems.push(`GATEWAY_REGIONS: ${config.gateways} gateways in all, more than ${MAX_GATEWAYS}`);
    }
  } else {
    problems.push(`GATEWAY_POLICY=${policy} is not random, ip or region`);
  }
  const calls = config.gateways + config.layout.shards;
  if (calls > config.subrequestLimit)
    problems.push(
      `${config.gateways} gateways and ${config.layout.shards} topic shards are ${calls} calls from one request ` +
        `(statistics call every gateway and every shard), more than SUBREQUEST_LIMIT=${config.subrequestLimit}: ` +
        `Workers Free allows ${SUBREQUESTS_FREE.toLocaleString("en-US")} calls to other objects a request, ` +
        `Paid ${SUBREQUESTS_PAID_DEFAULT.toLocaleString("en-US")} unless [limits] subrequests says more; ` +
        "set SUBREQUEST_LIMIT to your plan's, or use fewer objects",
    );
  return problems;
}
