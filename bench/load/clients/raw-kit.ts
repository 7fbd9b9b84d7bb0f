/** The benchmark's own client (one WebSocket frame per packet, our codec): the floor. */
import { LoadClient } from "../client.ts";
import type { Kit } from "./host.ts";

const utf8 = new TextEncoder();

export const rawKit: Kit<LoadClient> = {
  connect: (plan, clientId) =>
    LoadClient.connect(plan.url, clientId, {
      clean: plan.clean,
      version: plan.version,
      ...(plan.version === 5 && !plan.clean ? { expiry: 3600 } : {}),
    }),
  subscribe: (client, topics) => client.subscribeMany(topics, 1),
  onMessage: (client, handler) => {
    client.onMessage = (m) => handler(m.payload);
  },
  publish: (client, topic, payload) => {
    void client.publish(topic, utf8.encode(payload), 1);
  },
  close: async (client) => {
    client.close();
    await client.closed;
  },
};
