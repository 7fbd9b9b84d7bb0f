/**
 * Devices that speak only TCP, as the README's recipe connects them: a local
 * Mosquitto (Debian's) whose bridge reaches Nimbus through the TCP-to-WebSocket
 * relay (scripts/relay/tcp-to-websocket.ts), with the mosquitto.conf lines the
 * README shows. A device on Mosquitto publishes and Nimbus's subscribers get it
 * under the site's prefix; Nimbus publishes a command and the device gets it.
 */
import type { Server } from "node:net";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startRelay } from "../../scripts/relay/tcp-to-websocket.ts";
import { freePort } from "../support/broker.ts";
import { connect, Inbox, unique } from "../support/clients.ts";
import { type RunningMosquitto, startMosquitto } from "../support/mosquitto.ts";

const url = inject("brokerUrl");
const site = unique("site");
let relay: Server;
let mosquitto: RunningMosquitto;
const clients: MqttClient[] = [];

/** The README's bridge section, with this test's relay port and site prefix (anonymous: the shared broker allows it). */
function bridgeConf(relayPort: number): string[] {
  return [
    "connection nimbus",
    `address 127.0.0.1:${relayPort}`,
    "bridge_protocol_version mqttv311",
    "try_private false",
    `remote_clientid ${site}-bridge`,
    "cleansession false",
    "keepalive_interval 60",
    `notification_topic ${site}/bridge/state`,
    `topic sensors/# out 1 "" ${site}/`,
    `topic commands/# in 1 "" ${site}/`,
  ];
}

beforeAll(async () => {
  const relayPort = await freePort();
  relay = await startRelay({ host: "127.0.0.1", port: relayPort, url });
  mosquitto = await startMosquitto({ extra: bridgeConf(relayPort) });
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync()));
  await mosquitto?.stop();
  await new Promise((resolve) => relay?.close(resolve));
  // The bridge's state is retained: leave the shared broker as it was.
  const cleaner = await connect(url, { clientId: unique("cleaner") });
  await cleaner.publishAsync(`${site}/bridge/state`, "", { qos: 1, retain: true });
  await cleaner.endAsync();
});

async function client(at: string, clientId: string): Promise<MqttClient> {
  const c = await connect(at, { clientId, protocolVersion: 4 });
  clients.push(c);
  return c;
}

describe("devices that speak only TCP, through a local Mosquitto's bridge", () => {
  it("carries a device's readings to Nimbus and Nimbus's commands to the device", async () => {
    const app = await client(url, unique("app"));
    const appInbox = new Inbox(app);
    await app.subscribeAsync(`${site}/#`, { qos: 1 });
    // Mosquitto's bridge says it is up with a retained "1" (and "0" as its will).
    await appInbox.waitUntil(
      (ms) => ms.some((m) => m.topic === `${site}/bridge/state` && m.payload === "1"),
      "the bridge's state 1",
      20_000,
    );
    const device = await client(mosquitto.url, unique("device"));
    const deviceInbox = new Inbox(device);
    await device.subscribeAsync("commands/#", { qos: 1 });

    await device.publishAsync("sensors/boiler/temp", "71.5", { qos: 1 });
    await appInbox.waitUntil(
      (ms) => ms.some((m) => m.topic === `${site}/sensors/boiler/temp`),
      "the reading",
    );
    const reading = appInbox.messages.find((m) => m.topic === `${site}/sensors/boiler/temp`);
    expect(reading?.payload).toBe("71.5");

    await app.publishAsync(`${site}/commands/boiler`, "off", { qos: 1 });
    const [command] = await deviceInbox.waitFor(1, 10_000);
    expect(command?.topic).toBe("commands/boiler");
    expect(command?.payload).toBe("off");
  });
});
