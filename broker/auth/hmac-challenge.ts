/**
 * NIMBUS-HMAC-SHA256, a challenge/response method for devices that share a
 * secret with the broker: the broker sends a random 32-byte challenge; the client
 * answers HMAC-SHA256(secret, challenge || client id). The secret never travels.
 * Enabled by the AUTH_HMAC_SECRET secret.
 */
import { ReasonCode } from "../../mqtt/index.ts";
import type { AuthContext, AuthStep, EnhancedAuthMethod } from "./method.ts";

export const HMAC_METHOD = "NIMBUS-HMAC-SHA256";

export class HmacChallenge implements EnhancedAuthMethod {
  readonly name = HMAC_METHOD;
  private readonly key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  }

  async start(_ctx: AuthContext, _data: Uint8Array | undefined): Promise<{ step: AuthStep; state: unknown }> {
    const challenge = crypto.getRandomValues(new Uint8Array(32));
    return { step: { kind: "continue", data: challenge }, state: challenge };
  }

  async continue(
    ctx: AuthContext,
    state: unknown,
    data: Uint8Array | undefined,
  ): Promise<{ step: AuthStep; state: unknown }> {
    const challenge = state as Uint8Array;
    const signed = new Uint8Array([...challenge, ...new TextEncoder().encode(ctx.clientId)]);
    // crypto.subtle.verify compares in constant time.
    const ok = data !== undefined && (await crypto.subtle.verify("HMAC", await this.key, data, signed));
    const step: AuthStep = ok
      ? { kind: "success" }
      : { kind: "failure", reasonCode: ReasonCode.NotAuthorized, reason: "challenge answer does not verify" };
    return { step, state };
  }
}
