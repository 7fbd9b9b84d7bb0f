/**
 * Translation between Nimbus packets and mqtt-packet's objects, so that
 * mqtt-packet (the codec MQTT.js uses) can serve as an independent oracle.
 */
import mqttPacket from "mqtt-packet";
import type { Packet, ProtocolVersion } from "../../mqtt/index.ts";

// mqtt-packet keeps these 0/1 properties as booleans.
const BOOLEAN_PROPS = new Set([
  "requestResponseInformation",
  "requestProblemInformation",
  "payloadFormatIndicator",
  "retainAvailable",
  "wildcardSubscriptionAvailable",
  "subscriptionIdentifiersAvailable",
  "sharedSubscriptionAvailable",
]);

type Obj = Record<string, unknown>;

function propsToMp(props: Obj | undefined): Obj | undefined {
  if (!props) return undefined;
  const out: Obj = {};
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) continue;
    if (k === "userProperties") {
      const map: Record<string, string | string[]> = {};
      for (const [key, value] of v as Array<[string, string]>) {
        const cur = map[key];
        map[key] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
      }
      out[k] = map;
    } else if (k === "subscriptionIdentifiers") {
      const ids = v as number[];
      out.subscriptionIdentifier = ids.length === 1 ? ids[0] : ids;
    } else if (BOOLEAN_PROPS.has(k)) {
      out[k] = v === 1;
    } else if (v instanceof Uint8Array) {
      out[k] = Buffer.from(v);
    } else {
      out[k] = v;
    }
  }
  return out;
}

function propsFromMp(props: Obj | undefined): Obj | undefined {
  if (!props || Object.keys(props).length === 0) return undefined;
  const out: Obj = {};
  for (const [k, v] of Object.entries(props)) {
    if (k === "userProperties") {
      out[k] = Object.entries(v as Obj).flatMap(([key, value]) =>
        (Array.isArray(value) ? value : [value]).map((x) => [key, String(x)]),
      );
    } else if (k === "subscriptionIdentifier") {
      out.subscriptionIdentifiers = Array.isArray(v) ? v : [v];
    } else if (BOOLEAN_PROPS.has(k)) {
      out[k] = v ? 1 : 0;
    } else if (Buffer.isBuffer(v)) {
      out[k] = new Uint8Array(v as Buffer);
    } else {
      out[k] = v;
    }
  }
  return out;
}

export function toMp(p: Packet, version: ProtocolVersion): Obj {
  const v5 = version === 5;
  switch (p.type) {
    case "connect":
      return {
        cmd: "connect",
        protocolId: p.protocolName,
        protocolVersion: p.protocolVersion,
        clean: p.cleanStart,
        clientId: p.clientId,
        keepalive: p.keepAlive,
        username: p.username,
        password: p.password ? Buffer.from(p.password) : undefined,
        will: p.will && {
          topic: p.will.topic,
          payload: Buffer.from(p.will.payload),
          qos: p.will.qos,
          retain: p.will.retain,
          properties: propsToMp(p.will.properties as Obj),
        },
        properties: propsToMp(p.properties as Obj),
      };
    case "connack":
      return v5
        ? {
            cmd: "connack",
            sessionPresent: p.sessionPresent,
            reasonCode: p.reasonCode,
            properties: propsToMp(p.properties as Obj),
          }
        : { cmd: "connack", sessionPresent: p.sessionPresent, returnCode: p.reasonCode };
    case "publish":
      return {
        cmd: "publish",
        topic: p.topic,
        payload: Buffer.from(p.payload),
        qos: p.qos,
        dup: p.dup,
        retain: p.retain,
        messageId: p.packetId,
        properties: propsToMp(p.properties as Obj),
      };
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return {
        cmd: p.type,
        messageId: p.packetId,
        reasonCode: p.reasonCode ?? 0,
        properties: propsToMp(p.properties as Obj),
      };
    case "subscribe":
      return {
        cmd: "subscribe",
        messageId: p.packetId,
        subscriptions: p.subscriptions.map((s) =>
          v5
            ? {
                topic: s.topicFilter,
                qos: s.qos,
                nl: s.noLocal,
                rap: s.retainAsPublished,
                rh: s.retainHandling,
              }
            : { topic: s.topicFilter, qos: s.qos },
        ),
        properties: propsToMp(p.properties as Obj),
      };
    case "suback":
      return {
        cmd: "suback",
        messageId: p.packetId,
        granted: p.reasonCodes,
        properties: propsToMp(p.properties as Obj),
      };
    case "unsubscribe":
      return {
        cmd: "unsubscribe",
        messageId: p.packetId,
        unsubscriptions: p.topicFilters,
        properties: propsToMp(p.properties as Obj),
      };
    case "unsuback":
      return {
        cmd: "unsuback",
        messageId: p.packetId,
        granted: p.reasonCodes,
        properties: propsToMp(p.properties as Obj),
      };
    case "pingreq":
    case "pingresp":
      return { cmd: p.type };
    case "disconnect":
      return { cmd: "disconnect", reasonCode: p.reasonCode, properties: propsToMp(p.properties as Obj) };
    case "auth":
      return { cmd: "auth", reasonCode: p.reasonCode, properties: propsToMp(p.properties as Obj) };
  }
}

/** mqtt-packet's object as a Nimbus packet, in the normal form `normalize` gives. */
export function fromMp(o: Obj, version: ProtocolVersion): Obj {
  const v5 = version === 5;
  const properties = propsFromMp(o.properties as Obj);
  const withProps = (x: Obj) => (properties ? { ...x, properties } : x);
  switch (o.cmd) {
    case "connect": {
      const will = o.will as Obj | undefined;
      const out: Obj = {
        type: "connect",
        protocolVersion: o.protocolVersion,
        protocolName: o.protocolId,
        clientId: o.clientId,
        cleanStart: o.clean,
        keepAlive: o.keepalive,
      };
      if (o.username !== undefined) out.username = o.username;
      if (o.password !== undefined) out.password = new Uint8Array(o.password as Buffer);
      if (will) {
        const wp = propsFromMp(will.properties as Obj);
        out.will = {
          topic: will.topic,
          payload: new Uint8Array(will.payload as Buffer),
          qos: will.qos,
          retain: will.retain,
          ...(wp ? { properties: wp } : {}),
        };
      }
      return withProps(out);
    }
    case "connack":
      return withProps({
        type: "connack",
        sessionPresent: o.sessionPresent,
        reasonCode: v5 ? o.reasonCode : o.returnCode,
      });
    case "publish":
      return withProps({
        type: "publish",
        topic: o.topic,
        payload: new Uint8Array(o.payload as Buffer),
        qos: o.qos,
        dup: o.dup,
        retain: o.retain,
        ...(o.qos === 0 ? {} : { packetId: o.messageId }),
      });
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return withProps({
        type: o.cmd,
        packetId: o.messageId,
        ...(v5 ? { reasonCode: o.reasonCode ?? 0 } : {}),
      });
    case "subscribe":
      return withProps({
        type: "subscribe",
        packetId: o.messageId,
        subscriptions: (o.subscriptions as Obj[]).map((s) => ({
          topicFilter: s.topic,
          qos: s.qos,
          noLocal: v5 ? Boolean(s.nl) : false,
          retainAsPublished: v5 ? Boolean(s.rap) : false,
          retainHandling: v5 ? (s.rh ?? 0) : 0,
        })),
      });
    case "suback":
      return withProps({ type: "suback", packetId: o.messageId, reasonCodes: o.granted });
    case "unsubscribe":
      return withProps({ type: "unsubscribe", packetId: o.messageId, topicFilters: o.unsubscriptions });
    case "unsuback":
      return withProps({
        type: "unsuback",
        packetId: o.messageId,
        ...(v5 ? { reasonCodes: o.granted } : {}),
      });
    case "disconnect":
      return withProps({ type: "disconnect", ...(v5 ? { reasonCode: o.reasonCode ?? 0 } : {}) });
    case "auth":
      return withProps({ type: "auth", reasonCode: o.reasonCode ?? 0 });
    default:
      return { type: o.cmd };
  }
}

/**
 * One form for comparing: 5.0 acks and DISCONNECT get an explicit reason code
 * (the wire's short form implies 0x00); 3.1.1 packets carry none.
 */
export function normalize(p: Packet, version: ProtocolVersion): Obj {
  const o = { ...p } as Obj;
  const hasCode = ["puback", "pubrec", "pubrel", "pubcomp", "disconnect"].includes(p.type);
  if (hasCode) {
    if (version === 5) o.reasonCode = (o.reasonCode as number | undefined) ?? 0;
    else delete o.reasonCode;
  }
  return o;
}

export function mpEncode(p: Packet, version: ProtocolVersion): Uint8Array {
  return new Uint8Array(
    mqttPacket.generate(toMp(p, version) as never, { protocolVersion: version } as never),
  );
}

/** Decodes with mqtt-packet; returns its packets and the first error. */
export function mpDecode(bytes: Uint8Array, version: ProtocolVersion): { packets: Obj[]; error?: Error } {
  const parser = mqttPacket.parser({ protocolVersion: version } as never);
  const packets: Obj[] = [];
  let error: Error | undefined;
  parser.on("packet", (p: unknown) => packets.push(p as Obj));
  parser.on("error", (e: Error) => {
    error ??= e;
  });
  parser.parse(Buffer.from(bytes));
  return { packets, error };
}
