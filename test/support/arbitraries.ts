/** fast-check generators of valid packets, for property tests of the codec. */
import fc from "fast-check";
import type { Packet, ProtocolVersion, QoS } from "../../mqtt/index.ts";
import type { Properties } from "../../mqtt/properties.ts";

/** A UTF-8 string MQTT accepts: any code point but U+0000. */
export const mqttString = (maxLength = 12) =>
  fc.string({ unit: "binary", maxLength }).filter((s) => !s.includes("\u0000"));

const nonEmpty = (maxLength = 12) => mqttString(maxLength).filter((s) => s.length > 0);
const bytes = (maxLength = 24) => fc.uint8Array({ maxLength });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u16nz = fc.integer({ min: 1, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u32nz = fc.integer({ min: 1, max: 0xffffffff });
const varintNz = fc.integer({ min: 1, max: 268_435_455 });
const bit = fc.constantFrom(0, 1);
const qos = fc.constantFrom<QoS>(0, 1, 2);
export const packetId = u16nz;

/**
 * User properties grouped by key, keys starting with a letter, values distinct per
 * key: mqtt-packet keeps them in an object, which would reorder interleaved or
 * integer-like keys, and it drops or mangles a value repeated under one key or an
 * empty value. The
 * Nimbus codec keeps all of those; the fixtures and round-trip tests cover them.
 */
const userProperties = fc
  .uniqueArray(
    fc.tuple(
      fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/),
      fc.uniqueArray(nonEmpty(8), { minLength: 1, maxLength: 3 }),
    ),
    {
      selector: ([k]) => k,
      maxLength: 3,
    },
  )
  .map((groups) => groups.flatMap(([k, vs]) => vs.map((v): [string, string] => [k, v])))
  .filter((l) => l.length > 0);

function props<K extends keyof Properties>(shape: { [P in K]: fc.Arbitrary<NonNullable<Properties[P]>> }) {
  const record = fc.record(shape as Record<K, fc.Arbitrary<unknown>>, { requiredKeys: [] }) as fc.Arbitrary<
    Partial<Properties>
  >;
  return record.map((p) => (Object.keys(p).length === 0 ? undefined : p));
}

const willProps = props({
  payloadFormatIndicator: bit,
  messageExpiryInterval: u32,
  contentType: mqttString(),
  responseTopic: nonEmpty(),
  correlationData: bytes(),
  willDelayInterval: u32,
  userProperties,
});

const connectProps = props({
  sessionExpiryInterval: u32,
  authenticationMethod: mqttString(),
  authenticationData: bytes(),
  requestProblemInformation: bit,
  requestResponseInformation: bit,
  receiveMaximum: u16nz,
  topicAliasMaximum: u16,
  userProperties,
  maximumPacketSize: u32nz,
});

const connackProps = props({
  sessionExpiryInterval: u32,
  assignedClientIdentifier: mqttString(),
  serverKeepAlive: u16,
  authenticationMethod: mqttString(),
  authenticationData: bytes(),
  responseInformation: mqttString(),
  serverReference: mqttString(),
  reasonString: mqttString(),
  receiveMaximum: u16nz,
  topicAliasMaximum: u16,
  maximumQoS: bit,
  retainAvailable: bit,
  userProperties,
  maximumPacketSize: u32nz,
  wildcardSubscriptionAvailable: bit,
  subscriptionIdentifiersAvailable: bit,
  sharedSubscriptionAvailable: bit,
});

const publishProps = props({
  payloadFormatIndicator: bit,
  messageExpiryInterval: u32,
  contentType: mqttString(),
  responseTopic: nonEmpty(),
  correlationData: bytes(),
  subscriptionIdentifiers: fc.array(varintNz, { minLength: 1, maxLength: 3 }),
  topicAlias: u16nz,
  userProperties,
});

const ackProps = props({ reasonString: mqttString(), userProperties });

function connect(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const v5 = version === 5;
  return fc
    .record({
      clientId: mqttString(23),
      cleanStart: fc.boolean(),
      keepAlive: u16,
      username: fc.option(mqttString(), { nil: undefined }),
      password: fc.option(bytes(), { nil: undefined }),
      will: fc.option(
        fc.record({
          topic: nonEmpty(),
          payload: bytes(),
          qos,
          retain: fc.boolean(),
          properties: v5 ? willProps : fc.constant(undefined),
        }),
        { nil: undefined },
      ),
      properties: v5 ? connectProps : fc.constant(undefined),
    })
    .map((r) => {
      // mqtt-packet refuses to encode an empty client id with 3.1 or without a clean
      // session; the server's rule (MQTT-3.1.3-8), not the codec's. Fixtures cover it.
      const clientId = r.clientId === "" && (version === 3 || !r.cleanStart) ? "c" : r.clientId;
      const p: Packet = {
        type: "connect",
        protocolVersion: version,
        protocolName: version === 3 ? "MQIsdp" : "MQTT",
        clientId,
        cleanStart: r.cleanStart,
        keepAlive: r.keepAlive,
      };
      // 3.1.1 forbids a password without a user name (MQTT-3.1.2-22); mqtt-packet
      // refuses it in 5.0 too, where it is allowed (validation tests cover that).
      if (r.username !== undefined) p.username = r.username;
      if (r.password !== undefined && r.username !== undefined) p.password = r.password;
      if (r.will) {
        const { properties, ...will } = r.will;
        p.will = properties ? { ...will, properties } : will;
      }
      if (r.properties) p.properties = r.properties;
      return p;
    });
}

function publish(version: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc
    .record({
      topic: nonEmpty(20),
      payload: bytes(64),
      qos,
      dup: fc.boolean(),
      retain: fc.boolean(),
      packetId,
      properties: version === 5 ? publishProps : fc.constant(undefined),
    })
    .map((r): Packet => {
      const base = { type: "publish" as const, topic: r.topic, payload: r.payload, retain: r.retain };
      const withProps = r.properties ? { properties: r.properties } : {};
      return r.qos === 0
        ? { ...base, qos: 0, dup: false, ...withProps }
        : { ...base, qos: r.qos, dup: r.dup, packetId: r.packetId, ...withProps };
    });
}

function pubAck(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const codes = {
    puback: [0, 0x10, 0x80, 0x87, 0x97],
    pubrec: [0, 0x10, 0x83],
    pubrel: [0, 0x92],
    pubcomp: [0, 0x92],
  };
  return fc.constantFrom("puback", "pubrec", "pubrel", "pubcomp" as const).chain((type) =>
    fc.record({ packetId, reasonCode: fc.constantFrom(...codes[type]), properties: ackProps }).map((r) => {
      const p: Packet & { type: typeof type } = { type, packetId: r.packetId };
      if (version === 5) {
        if (r.reasonCode !== 0 || r.properties) p.reasonCode = r.reasonCode;
        if (r.properties) p.properties = r.properties;
      }
      return p;
    }),
  );
}

function subscribe(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const v5 = version === 5;
  const sub = fc.record({
    topicFilter: nonEmpty(),
    qos,
    noLocal: v5 ? fc.boolean() : fc.constant(false),
    retainAsPublished: v5 ? fc.boolean() : fc.constant(false),
    retainHandling: v5 ? fc.constantFrom<0 | 1 | 2>(0, 1, 2) : fc.constant<0>(0),
  });
  return fc
    .record({
      packetId,
      subscriptions: fc.array(sub, { minLength: 1, maxLength: 4 }),
      properties: v5
        ? props({ subscriptionIdentifiers: varintNz.map((n) => [n]), userProperties })
        : fc.constant(undefined),
    })
    .map(({ properties, ...r }) =>
      properties ? { type: "subscribe", ...r, properties } : { type: "subscribe", ...r },
    );
}

function suback(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const codes = version === 5 ? [0, 1, 2, 0x80, 0x87, 0x8f, 0x97, 0x9e, 0xa1, 0xa2] : [0, 1, 2, 0x80];
  return fc
    .record({
      packetId,
      reasonCodes: fc.array(fc.constantFrom(...codes), { minLength: 1, maxLength: 4 }),
      properties: version === 5 ? ackProps : fc.constant(undefined),
    })
    .map(({ properties, ...r }) =>
      properties ? { type: "suback", ...r, properties } : { type: "suback", ...r },
    );
}

function unsubscribe(version: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc
    .record({
      packetId,
      topicFilters: fc.array(nonEmpty(), { minLength: 1, maxLength: 4 }),
      properties: version === 5 ? props({ userProperties }) : fc.constant(undefined),
    })
    .map(({ properties, ...r }) =>
      properties ? { type: "unsubscribe", ...r, properties } : { type: "unsubscribe", ...r },
    );
}

function unsuback(version: ProtocolVersion): fc.Arbitrary<Packet> {
  if (version !== 5) return packetId.map((id) => ({ type: "unsuback", packetId: id }));
  return fc
    .record({
      packetId,
      reasonCodes: fc.array(fc.constantFrom(0, 0x11, 0x80, 0x87, 0x8f), { minLength: 1, maxLength: 4 }),
      properties: ackProps,
    })
    .map(({ properties, ...r }) =>
      properties ? { type: "unsuback", ...r, properties } : { type: "unsuback", ...r },
    );
}

function connack(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const codes = version === 5 ? [0, 0x80, 0x84, 0x85, 0x86, 0x87, 0x8c, 0x97] : [0, 1, 2, 3, 4, 5];
  return fc
    .record({
      // MQTT 3.1 (level 3) has no session present flag: its byte is reserved.
      sessionPresent: version === 3 ? fc.constant(false) : fc.boolean(),
      reasonCode: fc.constantFrom(...codes),
      properties: version === 5 ? connackProps : fc.constant(undefined),
    })
    .map(({ properties, ...r }) =>
      properties ? { type: "connack", ...r, properties } : { type: "connack", ...r },
    );
}

function disconnect(version: ProtocolVersion): fc.Arbitrary<Packet> {
  if (version !== 5) return fc.constant({ type: "disconnect" });
  return fc
    .record({
      reasonCode: fc.constantFrom(0, 0x04, 0x80, 0x8e, 0x8d, 0x97),
      properties: props({
        sessionExpiryInterval: u32,
        serverReference: mqttString(),
        reasonString: mqttString(),
        userProperties,
      }),
    })
    .map(({ reasonCode, properties }): Packet => {
      if (properties) return { type: "disconnect", reasonCode, properties };
      // 0x00 without properties travels in the short form (5.0 3.14.2.1), which
      // decodes without a reason code: generate that canonical form, as pubAck does.
      return reasonCode === 0 ? { type: "disconnect" } : { type: "disconnect", reasonCode };
    });
}

const auth: fc.Arbitrary<Packet> = fc
  .record({
    reasonCode: fc.constantFrom(0, 0x18, 0x19),
    properties: props({
      authenticationMethod: mqttString(),
      authenticationData: bytes(),
      reasonString: mqttString(),
      userProperties,
    }),
  })
  .map(({ reasonCode, properties }) =>
    properties ? { type: "auth", reasonCode, properties } : { type: "auth", reasonCode },
  );

/** Any valid packet of `version`. */
export function anyPacket(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const all = [
    connect(version),
    connack(version),
    publish(version),
    pubAck(version),
    subscribe(version),
    suback(version),
    unsubscribe(version),
    unsuback(version),
    fc.constant<Packet>({ type: "pingreq" }),
    fc.constant<Packet>({ type: "pingresp" }),
    disconnect(version),
  ];
  if (version === 5) all.push(auth);
  return fc.oneof(...all);
}

export const versions: ProtocolVersion[] = [3, 4, 5];
