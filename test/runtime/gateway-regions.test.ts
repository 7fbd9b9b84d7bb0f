/**
 * Inside workerd: with GATEWAY_POLICY=region, the Worker's upgrade of a request
 * that Cloudflare says comes from Oceania (`request.cf.continent`) reaches a
 * gateway of Oceania's, asked for with Oceania's location hint (DESIGN.md, "Placement").
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { GatewayRpc } from "../../durable-objects/contracts.ts";
import { gatewayStub } from "../../durable-objects/stubs.ts";
import { encode } from "../../mqtt/index.ts";
import type { Env } from "../../worker/env.ts";
import worker from "../../worker/index.ts";
import { connectPacket } from "../support/packets.ts";

const bindings = env as unknown as Env;

/** The GATEWAY namespace, recording the options of every get(). */
function recording(): { namespace: DurableObjectNamespace<GatewayRpc>; gets: Array<[string, unknown]> } {
  const real = bindings.GATEWAY;
  const gets: Array<[string, unknown]> = [];
  const namespace = {
    idFromName: (name: string) => real.idFromName(name),
    get: (id: DurableObjectId, options?: DurableObjectNamespaceGetDurableObjectOptions) => {
      gets.push([id.name ?? id.toString(), options]);
      return real.get(id, options);
    },
  } as Pick<DurableObjectNamespace<GatewayRpc>, "idFromName" | "get">;
  return { namespace: namespace as DurableObjectNamespace<GatewayRpc>, gets };
}

/** Upgrades through the Worker with `cf` as Cloudflare would set it; CONNECT, and the CONNACK's reason code. */
async function upgradeFrom(cf: IncomingRequestCfProperties, vars: Partial<Env>, clientId: string) {
  const { namespace, gets } = recording();
  const request = new Request("http://nimbus.test/mqtt", {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", "CF-Connecting-IP": "203.0.113.9" },
    cf,
  });
  const res = await worker.fetch(request, { ...bindings, ...vars, GATEWAY: namespace });
  const ws = res.webSocket;
  if (ws === null) throw new Error(`no WebSocket: ${res.status} ${await res.text()}`);
  ws.accept();
  const connack = new Promise<Uint8Array>((resolve) =>
    ws.addEventListener("message", (e) => {
      const data = e.data as Blob | ArrayBuffer;
      if (data instanceof Blob) data.arrayBuffer().then((b) => resolve(new Uint8Array(b)));
      else resolve(new Uint8Array(data));
    }),
  );
  ws.send(encode(connectPacket(clientId, 4), 4));
  // 3.1.1 CONNACK: 0x20, length 2, flags, return code (MQTT-3.2.2-*): 0 accepted.
  expect([...(await connack)]).toEqual([0x20, 2, 0, 0]);
  return { ws, gets };
}

const REGIONS = { GATEWAY_POLICY: "region", GATEWAY_REGIONS: "enam:1,weur:1,oc:1" };

describe("GATEWAY_POLICY=region in the Worker", () => {
  it("sends a client in Oceania to gateway-oc-0, with the location hint oc", async () => {
    const sydney = { continent: "OC", country: "AU", longitude: "151.2" } as IncomingRequestCfProperties;
    const { ws, gets } = await upgradeFrom(sydney, REGIONS, "region-oc");
    expect(gets).toEqual([["gateway-oc-0", { locationHint: "oc" }]]);
    // The socket is held there: the gateway knows its own name and the client.
    const stats = await gatewayStub(bindings, "gateway-oc-0").stats();
    expect(stats.gateway).toBe("gateway-oc-0");
    expect(stats.connections).toBe(1);
    ws.close();
  });

  it("sends a request whose continent is unknown to the first region listed", async () => {
    const { ws, gets } = await upgradeFrom(
      { continent: "AN" } as IncomingRequestCfProperties,
      REGIONS,
      "region-an",
    );
    expect(gets).toEqual([["gateway-enam-0", { locationHint: "enam" }]]);
    ws.close();
  });

  it("under GATEWAY_POLICY=random gives no hint, wherever the client is", async () => {
    const sydney = { continent: "OC" } as IncomingRequestCfProperties;
    const { ws, gets } = await upgradeFrom(sydney, { GATEWAY_POLICY: "random", GATEWAYS: "1" }, "random-oc");
    expect(gets).toEqual([["gateway-0", undefined]]);
    ws.close();
  });
});
