/**
 * The Gateway's protocol decisions (broker/protocol/), in Node: what a packet
 * comes to, given what is known, with no runtime around it.
 */
import { describe, expect, it } from "vitest";
import { readConfig } from "../../broker/config.ts";
import { willMessage } from "../../broker/message.ts";
import { decideAck } from "../../broker/protocol/acks.ts";
import { type CloseReason, goodbye } from "../../broker/protocol/close.ts";
import { acceptedConnack, checkConnect, fitConnack, sessionTerms } from "../../broker/protocol/connect.ts";
import { decideDisconnect } from "../../broker/protocol/disconnect.ts";
import {
  decidePublish,
  decideSettled,
  decideWindow,
  type PublishFacts,
  resolveAlias,
  type WindowFacts,
} from "../../broker/protocol/publish.ts";
import { decideSubscribe, wantsRetained } from "../../broker/protocol/subscribe.ts";
import {
  type ConnectPacket,
  encode,
  type PublishPacket,
  ReasonCode,
  type SubscribePacket,
} from "../../mqtt/index.ts";
import { connectPacket } from "../support/packets.ts";

const config = readConfig({ MAX_SUBSCRIPTIONS: "2", MAX_TOPIC_LEVELS: "4" });

describe("how a connection ends (one table, broker/protocol/close.ts)", () => {
  const rows: Array<[CloseReason, number | undefined, number, string]> = [
    [{ kind: "client-disconnect", reasonCode: 0 }, undefined, 1000, "normal"],
    [
      { kind: "client-disconnect", reasonCode: ReasonCode.DisconnectWithWillMessage },
      undefined,
      1000,
      "abnormal",
    ],
    [{ kind: "socket-closed", detail: "gone" }, undefined, 1000, "abnormal"],
    [{ kind: "protocol-error", reasonCode: ReasonCode.ProtocolError, why: "x" }, 0x82, 1002, "abnormal"],
    // The client's violation of our Receive Maximum (MQTT-3.3.4-7 is its to keep): a protocol error.
    [
      { kind: "protocol-error", reasonCode: ReasonCode.ReceiveMaximumExceeded, why: "x" },
      0x93,
      1002,
      "abnormal",
    ],
    // The gateway's input bound reached, not the client's doing: 1013 Try Again Later.
    [{ kind: "protocol-error", reasonCode: ReasonCode.ServerBusy, why: "x" }, 0x89, 1013, "abnormal"],
    // The client past its own bounds (bytes held, the most publishes waiting): 1008 Policy Violation.
    [{ kind: "protocol-error", reasonCode: ReasonCode.MessageRateTooHigh, why: "x" }, 0x96, 1008, "abnormal"],
    // A quota of its own (retained messages, topic aliases): 1008 too.
    [{ kind: "protocol-error", reasonCode: ReasonCode.QuotaExceeded, why: "x" }, 0x97, 1008, "abnormal"],
    [{ kind: "keep-alive" }, ReasonCode.KeepAliveTimeout, 1000, "abnormal"],
    [{ kind: "connect-timeout" }, undefined, 1000, "abnormal"],
    [{ kind: "login-expired" }, ReasonCode.MaximumConnectTime, 1000, "abnormal"],
    [{ kind: "connect-refused", why: "x" }, undefined, 1000, "normal"],
    [{ kind: "administrator", reasonCode: ReasonCode.AdministrativeAction }, 0x98, 1000, "abnormal"],
    [{ kind: "shutdown", reasonCode: ReasonCode.ServerShuttingDown }, 0x8b, 1001, "abnormal"],
    [{ kind: "taken-over" }, ReasonCode.SessionTakenOver, 1000, "moved"],
    // RFC 6455 7.4.1: 1011, the server met a condition that kept it from fulfilling the request.
    [{ kind: "internal-error", detail: "stack" }, ReasonCode.UnspecifiedError, 1011, "abnormal"],
  ];
  it.each(rows)(
    "%o: DISCONNECT %s, close %s, the session leaves %s",
    (reason, disconnect, closeCode, ending) => {
      const g = goodbye(reason);
      expect([g.disconnect, g.closeCode, g.ending]).toEqual([disconnect, closeCode, ending]);
    },
  );

  it("never tells a client the detail of a fault of ours", () => {
    expect(goodbye({ kind: "internal-error", detail: "TypeError at secret.ts:1" }).why).toBe(
      "internal error",
    );
  });
});

describe("PUBLISH (3.3)", () => {
  const facts = (
    over: Omit<Partial<PublishFacts>, "packet"> & { packet?: Partial<PublishPacket> },
  ): PublishFacts => {
    const packet = {
      type: "publish",
      topic: "a/b",
      qos: 1,
      packetId: 7,
      dup: false,
      retain: false,
      payload: new Uint8Array([1]),
      ...over.packet,
    } as PublishPacket;
    return { topic: "a/b", version: 5, allowed: true, clientId: "c", id: "m1", now: 1000, ...over, packet };
  };

  it("routes an allowed message with its expiry and origin", () => {
    const d = decidePublish(
      facts({ packet: { properties: { messageExpiryInterval: 5 } } as Partial<PublishPacket> }),
      config,
    );
    expect(d.kind === "route" && [d.message.origin, d.message.expiresAt, d.message.id]).toEqual([
      "c",
      6000,
      "m1",
    ]);
  });

  it("the routed message owns its payload and Correlation Data: views into a 1 MB frame would keep the frame alive while counted as a few bytes", () => {
    const frame = new Uint8Array(1_000_000);
    const payload = frame.subarray(10, 12);
    const correlationData = frame.subarray(20, 21);
    const d = decidePublish(
      facts({ packet: { payload, properties: { correlationData } } as Partial<PublishPacket> }),
      config,
    );
    if (d.kind !== "route") throw new Error(d.kind);
    expect(d.message.payload.buffer.byteLength).toBe(2);
    expect(d.message.properties?.correlationData?.buffer.byteLength).toBe(1);
    const will = willMessage("c", {
      topic: "w",
      payload: frame.subarray(0, 3),
      qos: 1,
      retain: false,
      properties: { correlationData: frame.subarray(3, 4) },
    });
    expect(will.payload.buffer.byteLength).toBe(3);
    expect(will.properties?.correlationData?.buffer.byteLength).toBe(1);
  });

  it("5.0: refuses what the ACL denies with 0x87 in the acknowledgement; QoS 0 is dropped silently", () => {
    expect(decidePublish(facts({ allowed: false }), config)).toMatchObject({
      kind: "refuse",
      ack: "puback",
      reasonCode: 0x87,
    });
    expect(
      decidePublish(facts({ allowed: false, packet: { qos: 2 } as Partial<PublishPacket> }), config),
    ).toMatchObject({ ack: "pubrec" });
    expect(
      decidePublish(facts({ allowed: false, packet: { qos: 0 } as Partial<PublishPacket> }), config).kind,
    ).toBe("drop");
  });

  it("3.1.1 has no code to refuse with: acknowledged and dropped (MQTT-3.3.5-2)", () => {
    expect(decidePublish(facts({ allowed: false, version: 4 }), config).kind).toBe("acknowledge-dropped");
  });

  it("ends the connection for an invalid topic name (5.0 3.3.2.1: 0x90), past the configured levels too", () => {
    expect(decidePublish(facts({ topic: "a/+" }), config)).toMatchObject({
      kind: "close",
      reason: { reasonCode: 0x90 },
    });
    expect(decidePublish(facts({ topic: "a/b/c/d/e" }), config)).toMatchObject({
      kind: "close",
      reason: { reasonCode: 0x90 },
    });
  });

  it("refuses a payload that is not UTF-8 though its Payload Format Indicator says so (0x99)", () => {
    const bad = {
      payload: new Uint8Array([0xff]),
      properties: { payloadFormatIndicator: 1 },
    } as Partial<PublishPacket>;
    expect(decidePublish(facts({ packet: bad }), config)).toMatchObject({ kind: "refuse", reasonCode: 0x99 });
    expect(
      decidePublish(facts({ packet: { ...bad, qos: 0 } as Partial<PublishPacket> }), config),
    ).toMatchObject({ kind: "close", reason: { reasonCode: 0x99 } });
  });
});

describe("Topic Alias of a PUBLISH (5.0 3.3.2.3.4), resolved before anything else", () => {
  const known = new Map([[1, "a/b"]]);
  const resolve = (topic: string, topicAlias: number | undefined, version = 5) =>
    resolveAlias(
      { topic, properties: topicAlias === undefined ? {} : { topicAlias } },
      version,
      (a) => known.get(a),
      3,
    );
  const rows: Array<[string, string, number | undefined, object]> = [
    ["a topic without an alias is itself", "x", undefined, { kind: "topic", topic: "x" }],
    ["an empty topic uses its alias's mapping", "", 1, { kind: "topic", topic: "a/b" }],
    [
      "a topic with an alias sets the mapping (said once: nothing set when it is the same)",
      "c",
      1,
      { kind: "topic", topic: "c", set: { alias: 1, topic: "c" } },
    ],
    ["the same mapping again sets nothing", "a/b", 1, { kind: "topic", topic: "a/b" }],
    [
      "MQTT-3.3.2-8: alias 0 is 0x94",
      "x",
      0,
      { kind: "close", reason: { reasonCode: ReasonCode.TopicAliasInvalid } },
    ],
    [
      "MQTT-3.3.2-9: above our Topic Alias Maximum is 0x94",
      "x",
      4,
      { kind: "close", reason: { reasonCode: ReasonCode.TopicAliasInvalid } },
    ],
    [
      "an alias with no mapping and an empty topic is a Protocol Error",
      "",
      2,
      { kind: "close", reason: { reasonCode: ReasonCode.ProtocolError } },
    ],
    [
      "5.0 3.3.2.1: an empty topic without an alias is a Protocol Error",
      "",
      undefined,
      { kind: "close", reason: { reasonCode: ReasonCode.ProtocolError } },
    ],
  ];
  it.each(rows)("%s", (_, topic, alias, expected) => {
    const d = resolve(topic, alias);
    expect(d).toMatchObject(expected);
    if (!("set" in expected)) expect(d).not.toHaveProperty("set");
  });
});

describe("a QoS 1/2 PUBLISH against the client's open packet ids (4.3.3, 3.3.4)", () => {
  const facts = (over: Partial<WindowFacts>): WindowFacts => ({
    qos: 2,
    pending: false,
    awaitingRelease: false,
    unacknowledged: 0,
    ...over,
  });
  const rows: Array<[string, Partial<WindowFacts>, object]> = [
    ["a new packet id within the window goes on", {}, { kind: "accept" }],
    [
      "MQTT-4.3.3-10 (5.0) / MQTT-4.3.3-2 (3.1.1): QoS 2 again before PUBREL gets PUBREC again, not routed",
      { awaitingRelease: true, unacknowledged: 5 },
      { kind: "pubrec-again" },
    ],
    [
      "QoS 2 again while the first is on its way: the first's PUBREC answers both",
      { pending: true, unacknowledged: 5 },
      { kind: "ignore" },
    ],
    [
      "MQTT-3.3.4-7 broken (one more than Receive Maximum unacknowledged): DISCONNECT 0x93",
      { unacknowledged: 5 },
      { kind: "close", reason: { reasonCode: ReasonCode.ReceiveMaximumExceeded } },
    ],
    [
      "QoS 1 counts the same",
      { qos: 1, unacknowledged: 5 },
      { kind: "close", reason: { reasonCode: ReasonCode.ReceiveMaximumExceeded } },
    ],
    ["the last one within Receive Maximum goes on", { qos: 1, unacknowledged: 4 }, { kind: "accept" }],
  ];
  it.each(rows)("%s", (_, over, expected) => {
    expect(decideWindow(facts(over), 5)).toMatchObject(expected);
  });
});

describe("the answer to a message its shard has (3.4.2.1, 3.5.2.1)", () => {
  const rows: Array<[string, number | undefined, number, object]> = [
    ["accepted: a plain acknowledgement", undefined, 5, { kind: "ack", ack: "pubrec" }],
    ["5.0, no subscriber: 0x10", 0x10, 5, { kind: "ack", reasonCode: 0x10 }],
    ["3.1.1, no subscriber: no code", 0x10, 4, { kind: "ack", ack: "pubrec" }],
    ["5.0, the retained quota: 0x97 in the acknowledgement", 0x97, 5, { kind: "ack", reasonCode: 0x97 }],
    [
      "3.1.1, the retained quota: no code to carry it, the connection ends",
      0x97,
      4,
      { kind: "close", reason: { reasonCode: 0x97 } },
    ],
  ];
  it.each(rows)("%s", (_, code, version, expected) => {
    const d = decideSettled("pubrec", code, version);
    expect(d).toMatchObject(expected);
    if (d.kind === "ack" && !("reasonCode" in expected)) expect(d.reasonCode).toBeUndefined();
  });
});

describe("SUBSCRIBE (3.8)", () => {
  const sub = (topicFilter: string, more: Partial<SubscribePacket["subscriptions"][number]> = {}) => ({
    topicFilter,
    qos: 1 as const,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0 as const,
    ...more,
  });
  const packet = (...subscriptions: SubscribePacket["subscriptions"]): SubscribePacket => ({
    type: "subscribe",
    packetId: 1,
    subscriptions,
  });
  const facts = { version: 5, held: 0, has: () => false, allowed: () => true };

  it("a reason code per filter, in order: granted QoS, 0x8F invalid, 0x87 denied, 0x97 past the quota", () => {
    const d = decideSubscribe(
      packet(sub("a"), sub("a/#/b"), sub("secret/x"), sub("b"), sub("c")),
      { ...facts, allowed: (f) => !f.startsWith("secret") },
      config,
    );
    expect(d.kind === "grant" && d.reasonCodes).toEqual([1, 0x8f, 0x87, 1, 0x97]);
  });

  it("3.1.1 has one failure code for all (0x80)", () => {
    const d = decideSubscribe(packet(sub("a/#/b")), { ...facts, version: 4 }, config);
    expect(d.kind === "grant" && d.reasonCodes).toEqual([0x80]);
  });

  it("No Local on a shared subscription ends the connection (MQTT-3.8.3-4)", () => {
    expect(decideSubscribe(packet(sub("$share/g/a", { noLocal: true })), facts, config)).toMatchObject({
      kind: "close",
      reason: { reasonCode: 0x82 },
    });
  });

  it("a filter the client has replaces its options and costs no quota (MQTT-3.8.4-3); Retain Handling 1 sends retained only for a new one", () => {
    const d = decideSubscribe(
      packet(sub("a", { retainHandling: 1 }), sub("b", { retainHandling: 1 }), sub("c")),
      { ...facts, held: 2, has: (f) => f === "a" },
      config,
    );
    if (d.kind !== "grant") throw new Error("refused");
    expect(d.reasonCodes).toEqual([1, 0x97, 0x97]);
    expect(d.granted.map((g) => [g.filter, g.replaces, wantsRetained(g)])).toEqual([["a", true, false]]);
  });
});

describe("acknowledgements (4.3)", () => {
  it("retires a QoS 1 message on PUBACK; a PUBACK for a QoS 2 message is a Protocol Error", () => {
    expect(decideAck("puback", 1, undefined, { qos: 1, state: "sent" }, 5).kind).toBe("retire");
    expect(decideAck("puback", 1, undefined, { qos: 2, state: "sent" }, 5)).toMatchObject({
      kind: "close",
      reason: { reasonCode: 0x82 },
    });
  });

  it("PUBREC releases a QoS 2 message (once), with a failure code it ends the flow, for nothing in flight 5.0 answers PUBREL 0x92", () => {
    expect(decideAck("pubrec", 1, 0, { qos: 2, state: "sent" }, 5)).toEqual({
      kind: "release",
      record: true,
    });
    expect(decideAck("pubrec", 1, 0, { qos: 2, state: "released" }, 5)).toEqual({
      kind: "release",
      record: false,
    });
    expect(decideAck("pubrec", 1, 0x80, { qos: 2, state: "sent" }, 5).kind).toBe("retire");
    expect(decideAck("pubrec", 1, 0, undefined, 5)).toEqual({ kind: "release-unknown", reasonCode: 0x92 });
    expect(decideAck("pubrec", 1, 0, undefined, 4)).toEqual({
      kind: "release-unknown",
      reasonCode: undefined,
    });
  });

  it("PUBCOMP before PUBREL is a Protocol Error; a late PUBACK for nothing in flight is ignored", () => {
    expect(decideAck("pubcomp", 1, undefined, { qos: 2, state: "sent" }, 5).kind).toBe("close");
    expect(decideAck("pubcomp", 1, undefined, { qos: 2, state: "released" }, 5).kind).toBe("retire");
    expect(decideAck("puback", 9, undefined, undefined, 5).kind).toBe("ignore");
  });
});

describe("DISCONNECT (3.14)", () => {
  it("0x00 (and a 3.1.1 DISCONNECT, which has no code) drops the will (MQTT-3.14.4-3); 0x04 and any error code keep it (MQTT-3.1.2-8)", () => {
    expect(decideDisconnect({ type: "disconnect", reasonCode: 4 }, 0, 100)).toMatchObject({ keepWill: true });
    expect(decideDisconnect({ type: "disconnect", reasonCode: 0x80 }, 0, 100)).toMatchObject({
      keepWill: true,
    });
    expect(decideDisconnect({ type: "disconnect", reasonCode: 0 }, 0, 100)).toMatchObject({
      keepWill: false,
    });
    expect(decideDisconnect({ type: "disconnect" }, 0, 100)).toMatchObject({ keepWill: false });
  });

  it("may shorten or (after a non-zero one) set the Session Expiry Interval, capped; not extend a zero one (3.14.2.2.2)", () => {
    expect(
      decideDisconnect({ type: "disconnect", properties: { sessionExpiryInterval: 500 } }, 10, 100),
    ).toMatchObject({ expiry: 100 });
    expect(
      decideDisconnect({ type: "disconnect", properties: { sessionExpiryInterval: 5 } }, 0, 100),
    ).toMatchObject({ kind: "close", reason: { reasonCode: 0x82 } });
  });
});

describe("CONNECT (3.1) and CONNACK (3.2)", () => {
  const connect = (over: Partial<ConnectPacket>) => connectPacket("dev-1", 5, over);

  it("assigns an id to an empty one in 5.0 and 3.1.1 with Clean Session (MQTT-3.1.3-6); refuses it with Clean Session 0 (MQTT-3.1.3-8)", () => {
    expect(checkConnect(connect({ clientId: "" }), config, () => "new")).toEqual({
      refused: false,
      clientId: "new",
      assigned: true,
    });
    expect(checkConnect(connectPacket("", 4, { cleanStart: false }), config, () => "new")).toMatchObject({
      refused: true,
      code311: 2,
    });
  });

  it("refuses a will topic with a wildcard (0x90) and a will payload that is not UTF-8 as declared (0x99), before anything is claimed", () => {
    const will = { topic: "w/#", payload: new Uint8Array(), qos: 0 as const, retain: false };
    expect(checkConnect(connect({ will }), config, () => "x")).toMatchObject({
      refused: true,
      code5: 0x90,
      code311: null,
    });
    const bad = {
      ...will,
      topic: "w",
      payload: new Uint8Array([0xff]),
      properties: { payloadFormatIndicator: 1 },
    };
    expect(checkConnect(connect({ will: bad }), config, () => "x")).toMatchObject({
      refused: true,
      code5: 0x99,
    });
  });

  it("caps the keep-alive (Server Keep Alive, 3.2.2.3.14) and the session expiry, and says so in CONNACK", () => {
    const capped = readConfig({ MAX_KEEP_ALIVE: "60", MAX_SESSION_EXPIRY: "100", RECEIVE_MAXIMUM: "10" });
    const p = connect({ keepAlive: 600, properties: { sessionExpiryInterval: 1000 } });
    const terms = sessionTerms(p, capped);
    expect(terms).toEqual({ expiry: 100, persistent: true, keepAlive: 60 });
    const connack = acceptedConnack(
      p,
      { sessionPresent: false, terms, clientId: "dev-1", assigned: false },
      capped,
    );
    expect(connack.properties).toMatchObject({
      serverKeepAlive: 60,
      sessionExpiryInterval: 100,
      receiveMaximum: 10,
    });
  });

  it("leaves out what it may when the client's Maximum Packet Size is small, and gives up when nothing fits (MQTT-3.1.2-24)", () => {
    const p = connect({ properties: { maximumPacketSize: 20 } });
    const full = acceptedConnack(
      p,
      { sessionPresent: false, terms: sessionTerms(p, config), clientId: "dev-1", assigned: false },
      config,
    );
    const fitted = fitConnack(full, p);
    expect(fitted).toBeDefined();
    expect(encode(fitted as NonNullable<typeof fitted>, 5).length).toBeLessThanOrEqual(20);
    expect(fitted?.properties?.maximumPacketSize).toBe(config.maxPacketSize);
    expect(fitConnack(full, connect({ properties: { maximumPacketSize: 2 } }))).toBeUndefined();
  });
});
