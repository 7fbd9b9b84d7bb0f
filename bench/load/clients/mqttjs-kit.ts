/** MQTT.js as a fleet drives it, in Node or (bundled, the browser build) in Chromium. */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Kit } from "./host.ts";

/** `open`: how the client is made (`mqtt.connect`, or `connectWholePackets`). */
export function mqttjsKit(
  open: (url: string, options: IClientOptions) => MqttClient = mqtt.connect,
): Kit<MqttClient> {
  return {
    connect: (plan, clientId) =>
      new Promise((resolve, reject) => {
        const client = open(plan.url, {
          clientId,
          clean: plan.clean,
          protocolVersion: plan.version,
          reconnectPeriod: 0,
          connectTimeout: 60_000,
          keepalive: 60,
          ...(plan.version === 5 && !plan.clean ? { properties: { sessionExpiryInterval: 3600 } } : {}),
        });
        client.once("connect", () => resolve(client));
        client.once("error", reject);
        client.once("close", () => reject(new Error(`${clientId} closed before CONNACK`)));
      }),
    subscribe: async (client, topics) => {
      await client.subscribeAsync(topics, { qos: 1 });
    },
    onMessage: (client, handler) => client.on("message", (_topic, payload) => handler(payload)),
    publish: (client, topic, payload) => {
      client.publish(topic, payload, { qos: 1 });
    },
    close: async (client) => {
      await client.endAsync();
    },
  };
}
