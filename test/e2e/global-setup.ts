/**
 * Starts one broker per end-to-end project: "e2e-1x1" runs with one shard and one
 * gateway, "e2e-4x3" with four shards and three gateways.
 */
import type { TestProject } from "vitest/node";
import { startBroker } from "../support/broker.ts";

declare module "vitest" {
  export interface ProvidedContext {
    brokerUrl: string;
    brokerHttpUrl: string;
    brokerVars: Record<string, string>;
  }
}

export default async function setup(project: TestProject) {
  const match = /(\d+)x(\d+)/.exec(project.name);
  const vars: Record<string, string> = {
    // The shared broker of these tests lets anyone in; security.test.ts runs its own.
    ALLOW_ANONYMOUS: "true",
    TOPIC_SHARDS: match?.[1] ?? "1",
    GATEWAYS: match?.[2] ?? "1",
    // Short enough that tests of the CONNECT timeout do not wait long.
    CONNECT_TIMEOUT: "3",
    // Small, so the offline queue bound is reached quickly.
    MAX_QUEUED_MESSAGES: "25",
    // Small, so both Receive Maximums are quick to reach; and a keep-alive cap to test.
    MAX_INFLIGHT: "20",
    RECEIVE_MAXIMUM: "20",
    MAX_KEEP_ALIVE: "300",
    // Enables the NIMBUS-HMAC-SHA256 enhanced authentication method.
    AUTH_HMAC_SECRET: "e2e-shared-secret",
    // The HTTP API's bearer token, and $SYS every second.
    API_TOKEN: "e2e-api-token",
    SYS_INTERVAL: "1",
    // Small, so the subscription quota is quick to reach.
    MAX_SUBSCRIPTIONS: "30",
  };
  const broker = await startBroker({ vars });
  project.provide("brokerUrl", broker.url);
  project.provide("brokerHttpUrl", broker.httpUrl);
  project.provide("brokerVars", vars);
  return async () => {
    await broker.stop();
  };
}
