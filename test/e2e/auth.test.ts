/**
 * MQTT 5.0 enhanced authentication (4.12) through the pluggable method interface,
 * with the NIMBUS-HMAC-SHA256 challenge/response method.
 */
import { createHmac } from "node:crypto";
import { afterEach, describe, expect, inject, it } from "vitest";
import { ReasonCode } from "../../mqtt/index.ts";
import { RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const secret = inject("brokerVars").AUTH_HMAC_SECRET as string;
const METHOD = "NIMBUS-HMAC-SHA256";
const raws: RawClient[] = [];

afterEach(() => {
  for (const r of raws.splice(0)) r.terminate();
});

/** A device's key: HMAC-SHA256(secret, name), the name being its user name or else its client id. */
function deviceKey(name: string, master = secret): Buffer {
  return createHmac("sha256", master).update(name).digest();
}

function answer(challenge: Uint8Array, clientId: string, key = deviceKey(clientId)): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(challenge).update(clientId).digest());
}

async function start(clientId: string) {
  const r = await RawClient.open(url, 5);
  raws.push(r);
  r.sendConnect(clientId, { properties: { authenticationMethod: METHOD } });
  const challenge = await r.next("auth");
  expect(challenge.reasonCode).toBe(ReasonCode.ContinueAuthentication);
  expect(challenge.properties?.authenticationMethod).toBe(METHOD);
  return { r, challenge: challenge.properties?.authenticationData as Uint8Array };
}

describe("enhanced authentication (AUTH)", () => {
  it("completes a challenge/response exchange before CONNACK (4.12.1)", async () => {
    const clientId = unique("hmac");
    const { r, challenge } = await start(clientId);
    expect(challenge).toHaveLength(32);
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: METHOD, authenticationData: answer(challenge, clientId) },
    });
    const connack = await r.next("connack");
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.authenticationMethod).toBe(METHOD);
  });

  it("refuses a wrong answer with CONNACK 0x87", async () => {
    const clientId = unique("hmac-bad");
    const { r, challenge } = await start(clientId);
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: {
        authenticationMethod: METHOD,
        authenticationData: answer(challenge, clientId, deviceKey(clientId, "wrong")),
      },
    });
    expect((await r.next("connack")).reasonCode).toBe(ReasonCode.NotAuthorized);
    await r.closed;
  });

  it("re-authenticates a connected client with AUTH 0x19 (4.12.1)", async () => {
    const clientId = unique("hmac-re");
    const { r, challenge } = await start(clientId);
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: METHOD, authenticationData: answer(challenge, clientId) },
    });
    await r.next("connack");
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ReAuthenticate,
      properties: { authenticationMethod: METHOD },
    });
    const again = await r.next("auth");
    expect(again.reasonCode).toBe(ReasonCode.ContinueAuthentication);
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: {
        authenticationMethod: METHOD,
        authenticationData: answer(again.properties?.authenticationData as Uint8Array, clientId),
      },
    });
    expect((await r.next("auth")).reasonCode).toBe(ReasonCode.Success);
  });

  it("treats AUTH naming another method as a protocol error (MQTT-4.12.0-5)", async () => {
    const clientId = unique("hmac-other");
    const { r } = await start(clientId);
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: "OTHER" },
    });
    // A protocol error before CONNACK: the socket is closed, with no CONNACK and no
    // DISCONNECT (a server sends none before a CONNACK, MQTT-3.14.0-1).
    expect((await r.closed).code).toBe(1002);
    expect(r.drain()).toEqual([]);
  });

  it("treats AUTH without an authentication method at CONNECT as a protocol error", async () => {
    const r = await RawClient.open(url, 5);
    raws.push(r);
    await r.connect(unique("noauth"), { version: 5 });
    r.send({
      type: "auth",
      reasonCode: ReasonCode.ReAuthenticate,
      properties: { authenticationMethod: METHOD },
    });
    expect((await r.next("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });
});
