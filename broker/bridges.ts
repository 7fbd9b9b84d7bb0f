/**
 * Bridges to other MQTT brokers (README, Integrations): set in `BRIDGES` (JSON),
 * checked with the configuration. Each bridge is an object that connects out over
 * TCP (TLS unless `"tls": false`), speaks MQTT 5.0 or 3.1.1 to the remote broker, and carries topics
 * both ways as Mosquitto's `topic` lines do: `pattern`, a direction, a QoS, and a
 * local and a remote prefix. In: the bridge subscribes to `remotePrefix + pattern`
 * there and publishes here with the remote prefix replaced by the local one. Out:
 * it subscribes to `localPrefix + pattern` here and publishes there the other way.
 */
import { validateTopicFilter } from "../mqtt/index.ts";
import { namedListSetting } from "./json.ts";

export interface BridgeTopic {
  pattern: string;
  direction: "in" | "out" | "both";
  /** 0 or 1: the QoS of the bridge's subscription on each side. */
  qos: 0 | 1;
  localPrefix: string;
  remotePrefix: string;
}

export interface BridgeConfig {
  name: string;
  host: string;
  port: number;
  tls: boolean;
  clientId: string;
  username?: string;
  /** The name of a secret holding the password (wrangler secret put NAME). */
  passwordSecret?: string;
  keepAlive: number;
  /** 5 (default), or 4 for a broker without MQTT 5.0 (then a topic bridged both ways comes back once). */
  protocolVersion: 4 | 5;
  topics: BridgeTopic[];
}

/** Bridges at most: each is an object that stays awake while connected. */
export const MAX_BRIDGES = 16;

/** Reads `BRIDGES`; every problem found, each naming its bridge. */
export function parseBridges(text: string | undefined): { bridges: BridgeConfig[]; problems: string[] } {
  const { items, problems } = namedListSetting("BRIDGES", text, MAX_BRIDGES, parseBridge);
  return { bridges: items, problems };
}

function parseBridge(b: unknown, at: string): BridgeConfig | string {
  if (typeof b !== "object" || b === null) return `${at} must be an object`;
  const o = b as Record<string, unknown>;
  if (typeof o.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(o.name))
    return `${at}: name must be 1 to 64 letters, digits, "-" or "_"`;
  const it = `bridge "${o.name}"`;
  if (typeof o.host !== "string" || o.host === "")
    return `${it}: host is the remote broker's name or address`;
  // TLS unless the configuration says otherwise: the bridge's password and every
  // message would otherwise cross the internet in clear.
  const tls = o.tls ?? true;
  if (typeof tls !== "boolean") return `${it}: tls is true (the default) or false`;
  const port = o.port ?? (tls ? 8883 : 1883);
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)
    return `${it}: port must be 1 to 65535`;
  const keepAlive = o.keepAlive ?? 60;
  if (typeof keepAlive !== "number" || !Number.isInteger(keepAlive) || keepAlive < 5 || keepAlive > 3600)
    return `${it}: keepAlive is 5 to 3600 seconds`;
  const clientId = o.clientId ?? `nimbus-bridge-${o.name}`;
  if (typeof clientId !== "string" || clientId.length === 0 || clientId.length > 64)
    return `${it}: clientId is 1 to 64 characters`;
  if (o.username !== undefined && typeof o.username !== "string") return `${it}: username must be a string`;
  if (
    o.passwordSecret !== undefined &&
    (typeof o.passwordSecret !== "string" || !/^[A-Za-z_]\w*$/.test(o.passwordSecret))
  )
    return `${it}: passwordSecret is the name of a secret`;
  if (!Array.isArray(o.topics) || o.topics.length === 0) return `${it}: topics lists at least one topic`;
  const topics: BridgeTopic[] = [];
  for (const t of o.topics) {
    const parsed = parseTopic(t);
    if (typeof parsed === "string") return `${it}: ${parsed}`;
    topics.push(parsed);
  }
  const protocolVersion = o.protocolVersion ?? 5;
  if (protocolVersion !== 4 && protocolVersion !== 5) return `${it}: protocolVersion is 5 or 4`;
  const config: BridgeConfig = {
    name: o.name,
    host: o.host,
    port,
    tls,
    clientId,
    keepAlive,
    protocolVersion,
    topics,
  };
  if (typeof o.username === "string") config.username = o.username;
  if (typeof o.passwordSecret === "string") config.passwordSecret = o.passwordSecret;
  return config;
}

function parseTopic(t: unknown): BridgeTopic | string {
  if (typeof t !== "object" || t === null)
    return "a topic is an object { pattern, direction, qos, localPrefix, remotePrefix }";
  const o = t as Record<string, unknown>;
  const direction = o.direction ?? "both";
  if (direction !== "in" && direction !== "out" && direction !== "both")
    return 'a topic\'s direction is "in", "out" or "both"';
  const qos = o.qos ?? 0;
  if (qos !== 0 && qos !== 1) return "a topic's qos is 0 or 1";
  const localPrefix = o.localPrefix ?? "";
  const remotePrefix = o.remotePrefix ?? "";
  if (typeof localPrefix !== "string" || typeof remotePrefix !== "string") return "prefixes are strings";
  if (typeof o.pattern !== "string") return "a topic needs pattern, a topic filter";
  for (const [side, prefix] of [
    ["local", localPrefix],
    ["remote", remotePrefix],
  ]) {
    const problem = validateTopicFilter(`${prefix}${o.pattern}`);
    if (problem !== null) return `the ${side} filter "${prefix}${o.pattern}" is not valid (${problem})`;
    if ((prefix as string).includes("+") || (prefix as string).includes("#"))
      return `the ${side} prefix has a wildcard`;
  }
  return { pattern: o.pattern, direction, qos, localPrefix, remotePrefix };
}

/** The topic on the other side: `from` prefix replaced by `to` (undefined if it lacks it). */
export function mapTopic(topic: string, from: string, to: string): string | undefined {
  return topic.startsWith(from) ? `${to}${topic.slice(from.length)}` : undefined;
}
