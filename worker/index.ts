/**
 * The Worker: routes HTTP, checks WebSocket upgrades on /mqtt and hands each
 * socket to a Gateway object. It keeps no state between requests.
 */
import { type BrokerConfig, ConfigError, configFor, readConfig } from "../broker/config.ts";
import { log } from "../broker/log.ts";
import type { Message as BrokerMessage } from "../broker/message.ts";
import { shardOf } from "../broker/routing.ts";
import { bridgeStub, shardStub } from "../durable-objects/stubs.ts";
import { handleApi, metrics } from "./api.ts";
import type { Env } from "./env.ts";
import { messageOf, type PublishBody } from "./publish-input.ts";
import { upgradeDecision, upgradeLoginsFor } from "./upgrade.ts";

export { Bridge } from "../durable-objects/bridge.ts";
export { Gateway } from "../durable-objects/gateway.ts";
export { Registry } from "../durable-objects/registry.ts";
export { Session } from "../durable-objects/session.ts";
export { StatsHub } from "../durable-objects/stats-hub.ts";
export { TopicShard } from "../durable-objects/topic-shard.ts";
export { UserShard } from "../durable-objects/user-shard.ts";

export default {
  async fetch(request: Request<unknown, IncomingRequestCfProperties>, env: Env): Promise<Response> {
    let config: BrokerConfig;
    try {
      // Settings past a platform limit are refused whole, at once and in plain words.
      config = configFor(env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return new Response(`${err.message}\n`, { status: 500, headers: { "content-type": "text/plain" } });
    }
    const url = new URL(request.url);
    if (url.pathname === "/mqtt") return upgrade(request, env, config);
    if (url.pathname.startsWith("/api/")) return handleApi(request, env, url);
    if (url.pathname === "/metrics") return metrics(request, env);
    if (url.pathname === "/" && request.method === "GET") {
      return new Response("Nimbus MQTT broker: connect with MQTT over WebSocket at /mqtt\n", {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    return new Response("not found\n", { status: 404 });
  },

  /** A cron trigger (wrangler.toml [triggers]) makes sure every bridge runs, after a deploy too. */
  async scheduled(_controller: ScheduledController, env: Env): Promise<void> {
    const { bridges } = readConfig(env);
    await Promise.all(bridges.map((b) => bridgeStub(env, b.name).start()));
  },

  /**
   * The way in from Cloudflare Queues: every queue this Worker consumes (wrangler.toml,
   * [[queues.consumers]]) carries messages to publish, each body as POST /api/publish
   * takes it. They go to their shards in order, a call per shard; a message that is not
   * one is logged and acknowledged (it would never become one), a failed call is retried.
   */
  async queue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
    const config = readConfig(env);
    const byShard = new Map<number, Array<{ msg: Message<unknown>; message: BrokerMessage }>>();
    for (const msg of batch.messages) {
      const input = messageOf(msg.body as PublishBody, config, "queue");
      if (!input.ok) {
        log("warn", "queue_message_refused", { queue: batch.queue, problem: input.problem });
        msg.ack();
        continue;
      }
      const shard = shardOf(input.message.topic, config.layout);
      const list = byShard.get(shard) ?? [];
      list.push({ msg, message: input.message });
      byShard.set(shard, list);
    }
    await Promise.all(
      [...byShard].map(async ([shard, list]) => {
        try {
          await shardStub(env, shard).publish(list.map((l) => l.message));
          for (const l of list) l.msg.ack();
        } catch (err) {
          log("error", "queue_publish_failed", {
            queue: batch.queue,
            count: list.length,
            error: String(err),
          });
          for (const l of list) l.msg.retry();
        }
      }),
    );
  },
} satisfies ExportedHandler<Env>;

/**
 * A WebSocket upgrade: checked, its login read (upgrade.ts), and handed to a
 * Gateway object, or refused.
 */
async function upgrade(
  request: Request<unknown, IncomingRequestCfProperties>,
  env: Env,
  config: BrokerConfig,
): Promise<Response> {
  const decision = await upgradeDecision(request, config, upgradeLoginsFor(env), request.cf);
  if (decision.kind === "refuse") return decision.response;
  const { name, locationHint } = decision.gateway;
  // A region's gateway is created in its region: the hint counts only at creation (DESIGN.md, "Placement").
  const id = env.GATEWAY.idFromName(name);
  const stub = locationHint === undefined ? env.GATEWAY.get(id) : env.GATEWAY.get(id, { locationHint });
  return stub.fetch(decision.request);
}
