/**
 * $SYS topics, named as Mosquitto names them. A gateway publishes them to its own
 * subscribers only, every SYS_INTERVAL seconds, and only while one of its clients
 * subscribes to $SYS: no object is woken for nobody.
 */
import type { Message } from "../../broker/message.ts";
import type { BrokerStats } from "../../broker/stats.ts";

export const SYS_VERSION = "nimbus 0.1.0";

export function isSysFilter(filter: string): boolean {
  return filter === "$SYS" || filter.startsWith("$SYS/");
}

export function sysMessages(stats: BrokerStats, uptimeSeconds: number, now = Date.now()): Message[] {
  const values: Array<[string, string]> = [
    ["$SYS/broker/version", SYS_VERSION],
    ["$SYS/broker/uptime", `${uptimeSeconds} seconds`],
    ["$SYS/broker/clients/connected", String(stats.connections)],
    ["$SYS/broker/messages/received", String(stats.messagesIn)],
    ["$SYS/broker/messages/sent", String(stats.messagesOut)],
    ["$SYS/broker/bytes/received", String(stats.bytesIn)],
    ["$SYS/broker/bytes/sent", String(stats.bytesOut)],
    ["$SYS/broker/subscriptions/count", String(stats.subscriptions)],
    ["$SYS/broker/retained messages/count", String(stats.retained)],
  ];
  return values.map(([topic, value]) => ({
    id: `sys:${topic}:${now}`,
    topic,
    payload: new TextEncoder().encode(value),
    qos: 0,
    retain: false,
  }));
}
