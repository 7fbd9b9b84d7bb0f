/**
 * Presence events (docs/sys-topics.md, Presence): the two messages a connection makes, a pure
 * function of its facts; their topics for every client id; what a subscriber needs
 * of the ACL; the bounds of a message; the settings.
 */
import { describe, expect, it } from "vitest";
import { Acl } from "../../broker/acl.ts";
import { ConfigError, readConfig } from "../../broker/config.ts";
import {
  type ConnectionFacts,
  MAX_PRESENCE_PRINCIPAL_BYTES,
  type PresenceSettings,
  presenceMessage,
  presenceTopic,
} from "../../broker/presence.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { topicMatches, validateTopicName } from "../../mqtt/index.ts";

const ON: PresenceSettings = { enabled: true, address: false };
const WITH_ADDRESS: PresenceSettings = { enabled: true, address: true };
const facts: ConnectionFacts = {
  clientId: "dev-1",
  connectionId: "7c0b1f4e-0000-4000-8000-000000000001",
  identity: { username: "alice", via: "password" },
  protocolLevel: 5,
  address: "203.0.113.7",
  time: 1_767_225_600_000,
};
const json = (payload: Uint8Array) => JSON.parse(new TextDecoder().decode(payload));

describe("presence messages", () => {
  it("connected: QoS 0, never retained, JSON with the client id, principal, protocol level and time", () => {
    const m = presenceMessage(ON, { ...facts, event: "connected" }, "gateway-0");
    expect(m).toMatchObject({
      topic: "$SYS/presence/connected/dev-1",
      qos: 0,
      retain: false,
      properties: { payloadFormatIndicator: 1, contentType: "application/json" },
    });
    expect(m?.origin).toBeUndefined();
    expect(json(m?.payload as Uint8Array)).toEqual({
      event: "connected",
      clientId: "dev-1",
      connectionId: facts.connectionId,
      principal: "user:alice",
      protocolLevel: 5,
      time: 1_767_225_600_000,
    });
  });

  it("disconnected: the close table's reason, code and words, paired with connected by connectionId", () => {
    const m = presenceMessage(
      ON,
      {
        ...facts,
        identity: { via: "anonymous" },
        protocolLevel: 4,
        event: "disconnected",
        reason: { kind: "keep-alive" },
      },
      "gateway-0",
    );
    expect(m?.topic).toBe("$SYS/presence/disconnected/dev-1");
    expect(json(m?.payload as Uint8Array)).toEqual({
      event: "disconnected",
      clientId: "dev-1",
      connectionId: facts.connectionId,
      principal: "anonymous",
      protocolLevel: 4,
      time: 1_767_225_600_000,
      reason: "keep-alive",
      reasonCode: 0x8d,
      detail: "keep-alive expired (3.1.1 MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22)",
    });
  });

  it.each([
    [
      { kind: "client-disconnect", reasonCode: 0x04 },
      { reason: "client-disconnect", reasonCode: 4, detail: "DISCONNECT" },
    ],
    [
      { kind: "socket-closed", detail: "socket closed (1006)" },
      { reason: "socket-closed", detail: "socket closed (1006)" },
    ],
    [{ kind: "taken-over" }, { reason: "taken-over", reasonCode: 0x8e, detail: "session taken over" }],
    [
      { kind: "administrator", reasonCode: 0x98 },
      { reason: "administrator", reasonCode: 0x98 },
    ],
    // An internal error's detail stays in the log: subscribers learn only that it was the broker's.
    [
      { kind: "internal-error", detail: "TypeError at store.ts:42" },
      { reason: "internal-error", reasonCode: 0x80, detail: "internal error" },
    ],
  ] satisfies Array<[CloseReason, Record<string, unknown>]>)("%o says %o", (reason, said) => {
    const m = presenceMessage(ON, { ...facts, event: "disconnected", reason }, "g");
    const b = json(m?.payload as Uint8Array);
    expect(b).toMatchObject(said);
    if (!("reasonCode" in said)) expect(b).not.toHaveProperty("reasonCode");
  });

  it("the address only with PRESENCE_ADDRESS=true; nothing at all while PRESENCE is off", () => {
    const connected = { ...facts, event: "connected" as const };
    expect(json(presenceMessage(ON, connected, "g")?.payload as Uint8Array).address).toBeUndefined();
    expect(json(presenceMessage(WITH_ADDRESS, connected, "g")?.payload as Uint8Array).address).toBe(
      "203.0.113.7",
    );
    const { address: _a, ...unknownAddress } = connected;
    expect(
      json(presenceMessage(WITH_ADDRESS, unknownAddress, "g")?.payload as Uint8Array).address,
    ).toBeUndefined();
    expect(presenceMessage({ enabled: false, address: true }, connected, "g")).toBeUndefined();
  });

  it("every message has an id of its own", () => {
    const a = presenceMessage(ON, { ...facts, event: "connected" }, "gateway-0");
    const b = presenceMessage(ON, { ...facts, event: "connected" }, "gateway-0");
    expect(a?.id).not.toBe(b?.id);
  });

  it("a principal past 1,024 bytes is cut on a character's boundary, and says so", () => {
    const long = "é".repeat(MAX_PRESENCE_PRINCIPAL_BYTES); // 2 bytes each
    const m = presenceMessage(
      ON,
      { ...facts, identity: { username: long, via: "jwt" }, event: "connected" },
      "g",
    );
    const body = json(m?.payload as Uint8Array);
    expect(body.principalTruncated).toBe(true);
    // "jwt:" is 4 bytes: 510 characters of 2 bytes fit in the 1,020 left, the 511th would not.
    expect(body.principal).toBe(`jwt:${"é".repeat(510)}`);
    expect(new TextEncoder().encode(body.principal).length).toBeLessThanOrEqual(MAX_PRESENCE_PRINCIPAL_BYTES);
    const exact = "a".repeat(MAX_PRESENCE_PRINCIPAL_BYTES - 4);
    const fits = presenceMessage(
      ON,
      { ...facts, identity: { username: exact, via: "jwt" }, event: "connected" },
      "g",
    );
    expect(json(fits?.payload as Uint8Array)).not.toHaveProperty("principalTruncated");
  });

  it("at its largest (a 512-byte client id of characters to escape, a 1,024-byte principal) a payload stays under 4 KiB", () => {
    const m = presenceMessage(
      WITH_ADDRESS,
      {
        ...facts,
        clientId: '"'.repeat(512),
        identity: { username: '"'.repeat(4000), via: "jwt" },
        address: "f".repeat(64),
        event: "disconnected",
        reason: { kind: "protocol-error", reasonCode: 0x87, why: '"'.repeat(4000) },
      },
      "g",
    );
    expect(m?.payload.length).toBeLessThan(4096);
  });
});

describe("presence topics", () => {
  it("a client id's /, +, # and % are percent-encoded: one level, a valid topic name (MQTT-4.7.1-1), one topic per client id", () => {
    const ids = ["a/b", "a%2Fb", "a+b", "a#b", "%", "/", "$SYS", "ü/ü"];
    const topics = ids.map((id) => presenceTopic("connected", id));
    expect(topics.slice(0, 5)).toEqual([
      "$SYS/presence/connected/a%2Fb",
      "$SYS/presence/connected/a%252Fb",
      "$SYS/presence/connected/a%2Bb",
      "$SYS/presence/connected/a%23b",
      "$SYS/presence/connected/%25",
    ]);
    expect(new Set(topics).size).toBe(ids.length);
    for (const t of topics) {
      expect(validateTopicName(t)).toBeNull();
      expect(t.split("/")).toHaveLength(4);
      expect(topicMatches("$SYS/presence/connected/+", t)).toBe(true);
    }
  });
});

describe("who may read presence (the ACL)", () => {
  const acl = new Acl([
    { user: "ops", publish: [], subscribe: ["$SYS/presence/#"] },
    { user: "*", publish: ["#"], subscribe: ["#", "devices/%c/#"] },
  ]);
  const ops = { clientId: "dash", username: "ops" };
  const alice = { clientId: "dev-1", username: "alice" };
  const topic = presenceTopic("connected", "dev-1");

  it("a principal granted $SYS/presence/# may subscribe; one granted # may not (MQTT-4.7.2-1: # does not reach $ topics)", () => {
    expect(acl.canSubscribe(ops, "$SYS/presence/#")).toBe(true);
    expect(acl.canSubscribe(ops, "$SYS/presence/disconnected/+")).toBe(true);
    expect(acl.canSubscribe(alice, "$SYS/presence/#")).toBe(false);
    expect(acl.canSubscribe(alice, "$SYS/#")).toBe(false);
    expect(acl.canSubscribe(alice, "#")).toBe(true);
    expect(topicMatches("#", topic)).toBe(false);
  });

  it("no client may publish a presence event, whatever its grants", () => {
    expect(acl.canPublish(alice, topic)).toBe(false);
    expect(new Acl(undefined).canPublish(alice, topic)).toBe(false);
  });
});

describe("settings", () => {
  it("PRESENCE is off unless set to true; PRESENCE_ADDRESS likewise; anything else is refused", () => {
    expect(readConfig({}).presence).toEqual({ enabled: false, address: false });
    expect(readConfig({ PRESENCE: "true", PRESENCE_ADDRESS: "true" }).presence).toEqual({
      enabled: true,
      address: true,
    });
    expect(readConfig({ PRESENCE: "false" }).presence.enabled).toBe(false);
    expect(() => readConfig({ PRESENCE: "on" })).toThrow(ConfigError);
    expect(() => readConfig({ PRESENCE_ADDRESS: "1" })).toThrow(
      /PRESENCE_ADDRESS=1 is neither true nor false/,
    );
  });
});
