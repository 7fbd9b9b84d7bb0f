/**
 * What `npm run bench -- --clients` measured, per delivered message, per connect and
 * per ping, written to bench/units.json for `npm run capacity` to price: the model
 * uses these counts, not assumed ones.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Units } from "../load/meter.ts";

export const UNITS_FILE = join(import.meta.dirname, "../units.json");

export type Sessions = "clean" | "persistent";
export interface Layout {
  shards: number;
  gateways: number;
}

export interface PacketFrames {
  connect: number;
  subscribe: number;
  publish: number;
  puback: number;
  /** Every frame over every packet (several small packets may share a frame). */
  overall: number;
}

/** One run of a fleet against Nimbus: billed units and where they landed, totals of the message phase. */
export interface MessageRow extends Omit<Units, "objects"> {
  client: string;
  layout: Layout;
  sessions: Sessions;
  traffic: "spread" | "burst";
  /** Publishers (as many subscribers), each message delivered fanOut times. */
  slots: number;
  fanOut: number;
  complete: boolean;
  latencyP50: number;
  latencyP99: number;
  /** At unit prices without allowances, every object counted awake (bench/load/meter.ts). */
  dollarsPerMillion: number;
  /** CPU the busiest workerd process used in the phase, ms (under wrangler dev: all objects share it). */
  workerdCpuMs: number;
}

/** Units of one operation, per client. */
export type OpUnits = Pick<
  Units,
  | "requests"
  | "wsIn"
  | "rowsWritten"
  | "logLines"
  | "gatewayEvents"
  | "shardCallsIn"
  | "registryCalls"
  | "sessionCalls"
>;

/** A raw client's connect and subscribe (one filter), and its disconnect; what an idle connection holds. */
export interface ConnectRow {
  layout: Layout;
  sessions: Sessions;
  clients: number;
  connect: OpUnits;
  disconnect: OpUnits;
  /** Isolate heap per idle connection after a garbage collection, bytes (NaN if the inspector did not answer). */
  heapBytes: number;
}

export interface PingRow {
  layout: Layout;
  pings: number;
  requests: number;
  wsIn: number;
}

export interface MeasuredUnits {
  measuredAt: string;
  machine: string;
  quick: boolean;
  /** Per client library and protocol level. */
  frames: Record<string, Partial<Record<"3.1.1" | "5.0", PacketFrames>>>;
  messages: MessageRow[];
  connects: ConnectRow[];
  pings: PingRow[];
}

export function readUnits(file = UNITS_FILE): MeasuredUnits {
  return JSON.parse(readFileSync(file, "utf8")) as MeasuredUnits;
}
