/**
 * The page side of a Chromium fleet: MQTT.js (bundled as the console bundles it,
 * so the browser build) in a Host, driven from the benchmark through `globalThis.fleet`.
 */
import type { MqttClient } from "mqtt";
import type { FleetPlan, Outcome, Progress, Slice, Traffic } from "./core.ts";
import { Host } from "./host.ts";
import { mqttjsKit } from "./mqttjs-kit.ts";

export interface PageFleet {
  open(plan: FleetPlan, slice: Slice): Promise<void>;
  start(traffic: Traffic): void;
  progress(): Progress;
  finish(): Promise<Outcome>;
  close(): Promise<void>;
}

declare global {
  var fleet: PageFleet;
}

let host: Host<MqttClient> | undefined;
const opened = (): Host<MqttClient> => {
  if (host === undefined) throw new Error("fleet.open first");
  return host;
};

globalThis.fleet = {
  open: async (plan, slice) => {
    host = await Host.open(mqttjsKit(), plan, slice);
  },
  start: (traffic) => opened().start(traffic),
  progress: () => opened().progress(),
  finish: () => opened().finish(),
  close: () => opened().close(),
};
