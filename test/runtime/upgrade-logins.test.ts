/**
 * (The runtime project's bindings set CLIENT_CERT_PRINCIPAL=cn.)
 *
 * Inside workerd, through the real Worker and Gateway: a client certificate
 * Cloudflare's mTLS verified (request.cf.tlsClientAuth, set here as the edge sets
 * it) logs the client in as cert:<CN>; one revoked, or a forged login header, logs
 * no one in (the runtime's broker lets anonymous clients in: the principal is
 * read from the Gateway's storage).
 */
import { runInDurableObject, SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Identity } from "../../broker/auth/authenticator.ts";
import type { PresentedCertificate } from "../../broker/auth/client-cert.ts";
import type { Gateway } from "../../durable-objects/gateway.ts";
import { ReasonCode } from "../../mqtt/index.ts";
import type { Env } from "../../worker/env.ts";
import { CERT_NOT_AFTER, presentedCertificate } from "../support/certificates.ts";
import { connectPacket } from "../support/packets.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));

const verified = presentedCertificate();

/** A socket through the Worker, with `cf` as Cloudflare's edge would set it. */
async function open(headers: Record<string, string>, tls?: PresentedCertificate): Promise<TestClient> {
  const init: RequestInit = {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", ...headers },
  };
  if (tls !== undefined) Object.assign(init, { cf: { tlsClientAuth: tls } });
  const res = await SELF.fetch(new Request("http://nimbus.test/mqtt", init));
  const ws = res.webSocket;
  if (!ws) throw new Error(`no WebSocket: ${res.status}`);
  ws.accept();
  return new TestClient(ws, 5);
}

function storedIdentity(clientId: string): Promise<Identity | undefined> {
  return runInDurableObject(gateway(), (gw: Gateway) => gw.store.getClient(clientId)?.identity);
}

describe("client certificates through the Worker and the Gateway", () => {
  it("a verified certificate logs in as cert:<CN> until its notAfter; a user name may repeat the CN, not rename it", async () => {
    const c = await open({}, verified);
    c.send(connectPacket("cert-dev-17", 5), 5);
    expect((await c.next("connack")).reasonCode).toBe(0);
    expect(await storedIdentity("cert-dev-17")).toEqual({
      username: "device-17",
      via: "certificate",
      expiresAt: CERT_NOT_AFTER,
    });
    const renamed = await open({}, verified);
    renamed.send(connectPacket("cert-renamed", 5, { username: "admin" }), 5);
    expect((await renamed.next("connack")).reasonCode).toBe(ReasonCode.BadUserNameOrPassword);
  });

  it("a revoked certificate, or a login header the client wrote itself, logs no one in", async () => {
    const revoked = await open({}, { ...verified, certRevoked: "1" });
    revoked.send(connectPacket("cert-revoked", 5), 5);
    expect((await revoked.next("connack")).reasonCode).toBe(0);
    expect(await storedIdentity("cert-revoked")).toEqual({ via: "anonymous" });
    const forged = await open({
      "x-nimbus-upgrade-identity": JSON.stringify({ identity: { username: "admin", via: "certificate" } }),
    });
    forged.send(connectPacket("cert-forged", 5), 5);
    expect((await forged.next("connack")).reasonCode).toBe(0);
    expect(await storedIdentity("cert-forged")).toEqual({ via: "anonymous" });
  });
});
