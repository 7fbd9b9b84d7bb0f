/**
 * NIMBUS-HMAC-SHA256, a challenge/response method for devices, with keys derived
 * per device from one secret (as Azure DPS's group enrollment derives them):
 *
 *   device key = HMAC-SHA256(AUTH_HMAC_SECRET, name)
 *   answer     = HMAC-SHA256(device key, challenge || client id)
 *
 * where `name` is the CONNECT user name, or the client id when there is none. A
 * device holds only its own key, so the answer proves the name: it becomes the
 * principal. The broker sends a random 32-byte challenge; no key ever travels.
 * `npm run device-key -- <name>` prints a device's key. Enabled by the
 * AUTH_HMAC_SECRET secret.
 */

import { ReasonCode } from "../../mqtt/index.ts";
import { fromBase64, toBase64 } from "../json.ts";
import type { AuthContext, AuthState, AuthStep, EnhancedAuthMethod } from "./method.ts";

export const HMAC_METHOD = "NIMBUS-HMAC-SHA256";

const utf8 = new TextEncoder();

async function hmacKey(secret: Uint8Array, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

/** A device's key: what it must hold to answer challenges as `name`. */
export async function deviceKey(secret: string, name: string): Promise<Uint8Array> {
  return derive(await hmacKey(utf8.encode(secret), "sign"), name);
}

async function derive(master: CryptoKey, name: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", master, utf8.encode(name)));
}

export class HmacChallenge implements EnhancedAuthMethod {
  readonly name = HMAC_METHOD;
  /** The secret, imported once: every answer checked derives a device key from it. */
  private readonly master: Promise<CryptoKey>;

  constructor(secret: string) {
    this.master = hmacKey(utf8.encode(secret), "sign");
  }

  async start(
    _ctx: AuthContext,
    _data: Uint8Array | undefined,
  ): Promise<{ step: AuthStep; state: AuthState }> {
    const challenge = crypto.getRandomValues(new Uint8Array(32));
    return { step: { kind: "continue", data: challenge }, state: toBase64(challenge) };
  }

  async continue(
    ctx: AuthContext,
    state: AuthState,
    data: Uint8Array | undefined,
  ): Promise<{ step: AuthStep; state: AuthState }> {
    const name = ctx.username ?? ctx.clientId;
    const challenge = fromBase64(state);
    const signed = new Uint8Array([...challenge, ...utf8.encode(ctx.clientId)]);
    const key = await hmacKey(await derive(await this.master, name), "verify");
    // crypto.subtle.verify compares in constant time.
    const ok = data !== undefined && (await crypto.subtle.verify("HMAC", key, data, signed));
    const step: AuthStep = ok
      ? { kind: "success", identity: name }
      : { kind: "failure", reasonCode: ReasonCode.NotAuthorized, reason: "challenge answer does not verify" };
    // A challenge answers once: the next exchange starts with a new one.
    return { step, state: "" };
  }
}
