/**
 * The HTTP API (bearer token from the API_TOKEN secret) and Prometheus metrics.
 * Errors are JSON: {"error": "...", "status": n}. /api/openapi.json describes it.
 */
import { secretEquals } from "../broker/auth/compare.ts";

import { readConfig } from "../broker/config.ts";

import { toBase64 } from "../broker/json.ts";

import { log } from "../broker/log.ts";

import { type Message, messageBytes, RPC_BATCH_BYTES } from "../broker/message.ts";

import { shardsForFilter } from "../broker/routing.ts";

import type { BrokerStats } from "../broker/stats.ts";
import type { RetainedPage } from "../durable-objects/contracts.ts";
import {
  bridgeStub,
  registryStub,
  shardStub,
  brokerStats as statsFromHub,
} from "../durable-objects/stubs.ts";
import { isWellFormedUtf8, ReasonCode, validateTopicFilter } from "../mqtt/index.ts";
import { listClients } from "./clients-api.ts";
import type { Env } from "./env.ts";
import { openApiDocument } from "./openapi.ts";
import { messageOf, type PublishBody, route } from "./publish-input.ts";
import { apiError, json } from "./responses.ts";
import { handleUsers } from "./users-api.ts";

/** Checks the bearer token; undefined when the request may go on. */
async function unauthorized(request: Request, env: Env): Promise<Response | undefined> {
  if (!env.API_TOKEN) return apiError(503, "the HTTP API is off: set the API_TOKEN secret");
  const header = request.headers.get("Authorization") ?? "";
  const given = header.startsWith("Bearer ") ? header.slice(7) : "";
  if (!(await secretEquals(given, env.API_TOKEN))) {
    return apiError(401, "missing or wrong bearer token");
  }
  return undefined;
}

export async function handleApi(request: Request, env: Env, url: URL): Promise<Response> {
  const path = url.pathname;
  if (path === "/api/openapi.json") return json(openApiDocument());
  const denied = await unauthorized(request, env);
  if (denied) return denied;
  try {
    if (path === "/api/publish") {
      return request.method === "POST" ? await publish(request, env) : apiError(405, "use POST");
    }
    if (path === "/api/retained" && request.method === "GET") return await retained(url, env);
    if (path === "/api/stats" && request.method === "GET") {
      const stats = brokerStats(env, url);
      return stats === undefined ? apiError(400, BAD_MAX_AGE) : json(await stats);
    }
    if (path === "/api/users" || path.startsWith("/api/users/")) return await handleUsers(request, env, url);
    // Each bridge's state and counters; asking starts any that is not running.
    if (path === "/api/bridges" && request.method === "GET") {
      const { bridges } = readConfig(env);
      return json(await Promise.all(bridges.map((b) => bridgeStub(env, b.name).start())));
    }
    if (path === "/api/clients")
      return request.method === "GET" ? await listClients(url, env) : apiError(405, "use GET");
    const client = /^\/api\/clients\/([^/]+)$/.exec(path);
    if (client) {
      const id = decodedSegment(client[1] as string);
      if (id === null) return apiError(400, "the client id is not well-formed percent-encoded UTF-8");
      if (request.method === "GET") {
        const info = await registryStub(env, id).info(id);
        return info === null ? apiError(404, `no session for client id ${JSON.stringify(id)}`) : json(info);
      }
      if (request.method === "DELETE") {
        const dropped = await registryStub(env, id).drop(id);
        return dropped
          ? json({ dropped: id })
          : apiError(404, `no session for client id ${JSON.stringify(id)}`);
      }
      return apiError(405, "use GET or DELETE");
    }
    return apiError(404, `no such endpoint: ${request.method} ${path}`);
  } catch (err) {
    log("error", "api_error", { path, error: String(err) });
    return apiError(500, "internal error");
  }
}

/** A path segment percent-decoded; null when it is not well-formed (decodeURIComponent throws). */
function decodedSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

async function publish(request: Request, env: Env): Promise<Response> {
  let body: PublishBody;
  try {
    body = (await request.json()) as PublishBody;
  } catch {
    return apiError(400, "the body must be JSON");
  }
  const config = readConfig(env);
  const input = messageOf(body, config, "api");
  if (!input.ok) return apiError(input.status, input.problem);
  const { message } = input;
  // QoS 0 answers once the shard has the message; QoS 1/2 once every destination
  // that stores it durably has it (the same moment an MQTT PUBACK is sent).
  const code = await route(env, config, message);
  if (code === ReasonCode.QuotaExceeded) return apiError(507, "retained message quota exceeded");
  // `matched`: whether any subscription matched (MQTT 5.0's 0x10 otherwise).
  return json({
    id: message.id,
    topic: message.topic,
    qos: message.qos,
    retain: message.retain,
    delivered: true,
    matched: code !== ReasonCode.NoMatchingSubscribers,
  });
}

async function retained(url: URL, env: Env): Promise<Response> {
  const filter = url.searchParams.get("filter") ?? "#";
  const problem = validateTopicFilter(filter);
  if (problem !== null) return apiError(400, problem);
  const config = readConfig(env);
  const shards = shardsForFilter(filter, config.layout);
  // Page by page, up to one call's worth in all: the answer is bounded in bytes
  // (the Worker's memory is shared), and says when a narrower filter is needed.
  const messages: Message[] = [];
  let bytes = 0;
  let truncated = false;
  for (const s of shards) {
    let after: string | null = null;
    do {
      const page: RetainedPage = await shardStub(env, s).retainedPage([filter], after);
      for (const m of page.messages) {
        bytes += messageBytes(m);
        if (bytes > RPC_BATCH_BYTES) truncated = true;
        else messages.push(m);
      }
      after = truncated ? null : page.next;
    } while (after !== null);
    if (truncated) break;
  }
  messages.sort((a, b) => a.topic.localeCompare(b.topic));
  return json(
    messages.map((m) => {
      const text = utf8OrNull(m.payload);
      return {
        topic: m.topic,
        qos: m.qos,
        ...(text === null ? { payloadBase64: toBase64(m.payload) } : { payload: text }),
        ...(m.properties ? { properties: jsonProperties(m.properties) } : {}),
      };
    }),
    200,
    truncated ? { "x-nimbus-truncated": "true" } : {},
  );
}

function utf8OrNull(bytes: Uint8Array): string | null {
  return isWellFormedUtf8(bytes) ? new TextDecoder().decode(bytes) : null;
}

function jsonProperties(props: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(props).map(([k, v]) => [k, v instanceof Uint8Array ? toBase64(v) : v]),
  );
}

/** The largest `max_age` a caller may allow (ms). */
const MAX_STATS_AGE = 60_000;

/**
 * The broker's statistics from the StatsHub. By default collected after the
 * request arrived (counts before and after an action tell what it cost);
 * `?max_age=<ms>` accepts a collection started that long ago, which callers
 * polling together share (a dashboard: one round of calls however many poll).
 */
function brokerStats(env: Env, url: URL): Promise<BrokerStats> | undefined {
  const text = url.searchParams.get("max_age");
  const maxAge = text === null ? 0 : Number(text);
  if (!Number.isInteger(maxAge) || maxAge < 0 || maxAge > MAX_STATS_AGE) return undefined;
  return statsFromHub(env, maxAge);
}

const BAD_MAX_AGE = `max_age is a whole number of milliseconds from 0 to ${MAX_STATS_AGE}`;

/** Prometheus text exposition of /api/stats. */
export async function metrics(request: Request, env: Env): Promise<Response> {
  const denied = await unauthorized(request, env);
  if (denied) return denied;
  const pending = brokerStats(env, new URL(request.url));
  if (pending === undefined) return apiError(400, BAD_MAX_AGE);
  const s = await pending;
  const lines: string[] = [];
  const metric = (
    name: string,
    help: string,
    type: "gauge" | "counter",
    samples: Array<[string, number]>,
  ) => {
    lines.push(`# HELP nimbus_${name} ${help}`, `# TYPE nimbus_${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`nimbus_${name}${labels} ${value}`);
  };
  const perGateway = (f: (g: BrokerStats["gateways"][number]) => number) =>
    s.gateways.map((g): [string, number] => [`{gateway="${g.gateway}"}`, f(g)]);
  const perShard = (f: (x: BrokerStats["shards"][number]) => number) =>
    s.shards.map((x): [string, number] => [`{shard="${x.shard}"}`, f(x)]);
  metric(
    "connections",
    "Clients connected",
    "gauge",
    perGateway((g) => g.connections),
  );
  metric(
    "subscriptions",
    "Subscriptions of connected clients",
    "gauge",
    perGateway((g) => g.subscriptions),
  );
  metric(
    "messages_received_total",
    "PUBLISH packets received from clients",
    "counter",
    perGateway((g) => g.counters.messages_in ?? 0),
  );
  metric(
    "messages_sent_total",
    "PUBLISH packets sent to clients",
    "counter",
    perGateway((g) => g.counters.messages_out ?? 0),
  );
  metric(
    "bytes_received_total",
    "Topic and payload bytes received",
    "counter",
    perGateway((g) => g.counters.bytes_in ?? 0),
  );
  metric(
    "bytes_sent_total",
    "PUBLISH bytes sent",
    "counter",
    perGateway((g) => g.counters.bytes_out ?? 0),
  );
  metric(
    "messages_dropped_total",
    "Messages dropped (too large for the client)",
    "counter",
    perGateway((g) => g.counters.dropped ?? 0),
  );
  metric(
    "messages_dropped_queue_full_total",
    "QoS 1/2 messages dropped: the online client had MAX_QUEUED_MESSAGES waiting",
    "counter",
    perGateway((g) => g.counters.dropped_queue_full ?? 0),
  );
  metric(
    "messages_dropped_qos0_total",
    "QoS 0 messages dropped: more than OUTBOUND_QOS0_RATE bytes a second for one client",
    "counter",
    perGateway((g) => g.counters.dropped_qos0 ?? 0),
  );
  metric(
    "messages_dropped_rate_total",
    "QoS 0 messages dropped on arrival: over their client's PUBLISH_RATE",
    "counter",
    perGateway((g) => g.counters.dropped_rate ?? 0),
  );
  metric(
    "messages_dropped_overload_total",
    "QoS 0 messages dropped under load: on arrival at a gateway whose routing window was full, or at a shard for a destination with SHARD_QOS0_BYTES waiting",
    "counter",
    [
      ...perGateway((g) => g.counters.dropped_overload ?? 0),
      ...perShard((x) => x.counters.dropped_overload ?? 0),
    ],
  );
  metric(
    "messages_expired_total",
    "Messages expired before delivery",
    "counter",
    perGateway((g) => g.counters.expired ?? 0),
  );
  metric(
    "retained_messages",
    "Retained messages",
    "gauge",
    perShard((x) => x.retained),
  );
  metric(
    "retained_bytes",
    "Payload bytes of retained messages",
    "gauge",
    perShard((x) => x.retainedBytes),
  );
  metric(
    "routes",
    "Filters registered per destination",
    "gauge",
    perShard((x) => x.routes),
  );
  metric(
    "messages_routed_total",
    "Messages routed by the shard",
    "counter",
    perShard((x) => x.counters.messages_routed ?? 0),
  );
  const rules = Object.entries(s.rules);
  const outcomes = ["matched", "sent", "failed", "dead", "dropped"] as const;
  metric(
    "rule_messages_total",
    "Messages per rule: matched, sent to the target, failed attempts, dead-lettered (QoS 1/2), dropped (QoS 0)",
    "counter",
    rules.flatMap(([name, c]) =>
      outcomes.map((o): [string, number] => [`{rule="${name}",outcome="${o}"}`, c[o]]),
    ),
  );
  metric(
    "rule_pending",
    "QoS 1/2 messages waiting in rules' outboxes",
    "gauge",
    rules.map(([name, c]): [string, number] => [`{rule="${name}"}`, c.pending]),
  );
  return new Response(`${lines.join("\n")}\n`, { headers: { "content-type": "text/plain; version=0.0.4" } });
}
