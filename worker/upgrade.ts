/**
 * A WebSocket upgrade on /mqtt, up to the Gateway: the checks (upgrade,
 * subprotocol, Origin), the gateway it goes to, the login its request carries
 * (broker/auth/upgrade-logins.ts), and the request the Gateway gets.
 *
 * What the Gateway learns from the Worker travels in `x-nimbus-*` headers (the
 * gateway's name, the subprotocol, the client's address, the upgrade's login).
 * Every `x-nimbus-*` header the client sent is removed first: otherwise a client
 * could name its own address (and so escape its failed-login budget) or its own
 * login.
 */

import type { PresentedCertificate } from "../broker/auth/client-cert.ts";
import { UPGRADE_IDENTITY_HEADER } from "../broker/auth/upgrade-identity.ts";
import {
  QUERY_TOKEN_PARAMETER,
  readUpgradeLoginSettings,
  type UpgradeLoginEnv,
  UpgradeLogins,
} from "../broker/auth/upgrade-logins.ts";
import type { BrokerConfig } from "../broker/config.ts";
import { type ClientPlace, type GatewayPick, pickGateway } from "../broker/gateways.ts";
import { log } from "../broker/log.ts";

/** Subprotocols MQTT over WebSocket uses (MQTT 5.0 6.0, 3.1.1 6.0; "mqttv3.1" for 3.1). */
const SUBPROTOCOLS = ["mqtt", "mqttv3.1"];

/** Headers of the Worker's own, for the Gateway: never taken from a client. */
const OWN_HEADERS = "x-nimbus-";
/** Credentials the Gateway has no use for once the Worker read them: they go no further. */
const CREDENTIAL_HEADERS = ["cookie", "cf-access-jwt-assertion", "authorization"];

export type UpgradeDecision =
  | { kind: "refuse"; response: Response }
  /** Hand `request` to the Gateway `gateway` names (created at its location hint, if any). */
  | { kind: "forward"; gateway: GatewayPick; request: Request };

/** What the upgrade reads of `request.cf`: where the client is, and its certificate's verdict. */
export interface UpgradeCf {
  continent?: unknown;
  country?: unknown;
  longitude?: unknown;
  tlsClientAuth?: PresentedCertificate;
}

/**
 * What to do with a request to /mqtt. `cf` is the request's `cf` object, set by
 * Cloudflare (under `wrangler dev`, a stand-in).
 */
export async function upgradeDecision(
  request: Request,
  config: BrokerConfig,
  logins: UpgradeLogins,
  cf: UpgradeCf | undefined,
): Promise<UpgradeDecision> {
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    const response = new Response("MQTT needs a WebSocket upgrade\n", {
      status: 426,
      headers: { Upgrade: "websocket" },
    });
    return { kind: "refuse", response };
  }
  const offered = (request.headers.get("Sec-WebSocket-Protocol") ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  const protocol = offered.find((p) => SUBPROTOCOLS.includes(p));
  if (protocol === undefined) {
    const response = new Response("WebSocket subprotocol must be mqtt (or mqttv3.1)\n", { status: 400 });
    return { kind: "refuse", response };
  }
  // Browsers send Origin; with an allow-list configured, only those origins may
  // open a socket. Devices and servers send no Origin and are not affected.
  const origin = request.headers.get("Origin");
  const allowed = config.allowedOrigins;
  if (origin !== null && allowed.length > 0 && !allowed.includes(origin)) {
    return { kind: "refuse", response: new Response("origin not allowed\n", { status: 403 }) };
  }
  const address = request.headers.get("CF-Connecting-IP") ?? "";
  const outcome = logins.enabled ? await logins.identify(request, cf) : undefined;
  if (outcome?.kind === "refused") {
    log("info", "upgrade_login_refused", { reason: outcome.reason });
    return { kind: "refuse", response: new Response(`${outcome.reason}\n`, { status: 401 }) };
  }
  // Ambient credentials that did not verify were passed over: the operator sees why.
  if (outcome !== undefined && outcome.passedOver.length > 0)
    log("info", "upgrade_login_passed_over", { reasons: outcome.passedOver });

  const gateway = pickGateway(config.placement, config.gateways, placeOf(cf, address), Math.random());
  // Copied whole (one call), then what must not go on is removed: cheaper than a header at a time.
  const headers = new Headers(request.headers);
  for (const key of request.headers.keys()) if (key.startsWith(OWN_HEADERS)) headers.delete(key);
  for (const key of CREDENTIAL_HEADERS) headers.delete(key);
  headers.set("x-nimbus-gateway", gateway.name);
  headers.set("x-nimbus-subprotocol", protocol);
  // Set by Cloudflare, not by the client: failed authentications are limited per address.
  headers.set("x-nimbus-client-address", address);
  if (outcome?.kind === "login") headers.set(UPGRADE_IDENTITY_HEADER, outcome.header);
  // Without a query there is no token to remove: the URL is not parsed again.
  let url = request.url;
  if (url.includes("?")) {
    const parsed = new URL(url);
    parsed.searchParams.delete(QUERY_TOKEN_PARAMETER);
    url = parsed.href;
  }
  return { kind: "forward", gateway, request: new Request(url, { method: "GET", headers }) };
}

/** Where Cloudflare says the upgrade comes from, for GATEWAY_POLICY=region. */
function placeOf(cf: UpgradeCf | undefined, address: string): ClientPlace {
  return {
    continent: typeof cf?.continent === "string" ? cf.continent : undefined,
    country: typeof cf?.country === "string" ? cf.country : undefined,
    longitude: typeof cf?.longitude === "string" ? cf.longitude : undefined,
    address,
  };
}

/**
 * The logins of this isolate's settings. Kept between requests on purpose: the
 * Access keys and a JWKS_URL's keys are fetched once and cached (jwks.ts), not at
 * every upgrade. A change of settings (a deploy) makes a new one; losing it (a new
 * isolate) costs one fetch.
 */
let cached: { key: string; logins: UpgradeLogins } | undefined;
/** The logins of each env object seen (the same one every request): its settings are read once. */
const loginsOf = new WeakMap<object, UpgradeLogins>();

export function upgradeLoginsFor(env: UpgradeLoginEnv): UpgradeLogins {
  const known = loginsOf.get(env);
  if (known !== undefined) return known;
  const { settings } = readUpgradeLoginSettings(env);
  const key = JSON.stringify(settings);
  if (cached?.key !== key) cached = { key, logins: new UpgradeLogins(settings) };
  loginsOf.set(env, cached.logins);
  return cached.logins;
}
