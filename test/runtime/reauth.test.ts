/**
 * Inside workerd: MQTT 5.0 re-authentication (4.12.1) keeps working when the
 * gateway hibernates, before it starts or between its two steps, because the
 * method and its state live in the WebSocket attachment, not only in memory.
 */
import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { deviceKey, HMAC_METHOD } from "../../broker/auth/hmac-challenge.ts";
import { type AuthPacket, ReasonCode } from "../../mqtt/index.ts";
import type { Env } from "../../worker/env.ts";
import { connectPacket } from "../support/packets.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
const hibernate = () => evictDurableObject(gateway(), { webSockets: "hibernate" });

/** HMAC-SHA256(device key of `name`, challenge ‖ client id). */
async function answer(name: string, clientId: string, challenge: AuthPacket): Promise<Uint8Array> {
  const raw = await deviceKey(bindings.AUTH_HMAC_SECRET as string, name);
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const data = challenge.properties?.authenticationData as Uint8Array;
  const signed = new Uint8Array([...data, ...new TextEncoder().encode(clientId)]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
}

function auth(reasonCode: number, authenticationData?: Uint8Array): AuthPacket {
  const properties: NonNullable<AuthPacket["properties"]> = { authenticationMethod: HMAC_METHOD };
  if (authenticationData !== undefined) properties.authenticationData = authenticationData;
  return { type: "auth", reasonCode, properties };
}

describe("re-authentication across hibernation", () => {
  it("succeeds after the gateway hibernated, and between the challenge and the answer", async () => {
    const clientId = "reauth-dev";
    const c = await TestClient.open(5);
    c.send(
      connectPacket(clientId, 5, { username: "dev-r", properties: { authenticationMethod: HMAC_METHOD } }),
      5,
    );
    c.send(auth(ReasonCode.ContinueAuthentication, await answer("dev-r", clientId, await c.next("auth"))), 5);
    expect((await c.next("connack")).reasonCode).toBe(0);

    await hibernate();
    c.send(auth(ReasonCode.ReAuthenticate), 5);
    const challenge = await c.next("auth");
    expect(challenge.reasonCode).toBe(ReasonCode.ContinueAuthentication);
    await hibernate();
    c.send(auth(ReasonCode.ContinueAuthentication, await answer("dev-r", clientId, challenge)), 5);
    expect((await c.next("auth")).reasonCode).toBe(ReasonCode.Success);

    // A re-authentication with another device's key fails and ends the connection (MQTT-4.12.1-2).
    c.send(auth(ReasonCode.ReAuthenticate), 5);
    const again = await c.next("auth");
    c.send(auth(ReasonCode.ContinueAuthentication, await answer("dev-other", clientId, again)), 5);
    expect((await c.next("disconnect")).reasonCode).toBe(ReasonCode.NotAuthorized);
  });
});
