/**
 * Enhanced authentication (MQTT 5.0 section 4.12): a method named in CONNECT's
 * Authentication Method runs a challenge/response exchange of AUTH packets. Each
 * method implements this interface; the broker drives the packets.
 */

/** What a step of the exchange decided. */
export type AuthStep =
  /** `identity`: the principal's name the method verified (never one it was merely told). */
  | { kind: "success"; identity: string; data?: Uint8Array }
  | { kind: "continue"; data?: Uint8Array }
  | { kind: "failure"; reasonCode: number; reason: string };

export interface AuthContext {
  clientId: string;
  /** The user name of CONNECT, or the principal's name when re-authenticating. */
  username?: string;
}

/**
 * A method's state between two steps. It is kept in the WebSocket attachment, so
 * that an exchange (a re-authentication) survives the gateway's hibernation: a
 * short string, at most MAX_AUTH_STATE characters.
 */
export type AuthState = string;
export const MAX_AUTH_STATE = 128;

export interface EnhancedAuthMethod {
  /** The Authentication Method string clients send, e.g. "SCRAM-SHA-256". */
  readonly name: string;
  /**
   * First step, with the Authentication Data of CONNECT (or of AUTH 0x19 when the
   * client re-authenticates). Returns the step and the method's state for the next.
   */
  start(ctx: AuthContext, data: Uint8Array | undefined): Promise<{ step: AuthStep; state: AuthState }>;
  /** A further step, with the Authentication Data of the client's AUTH 0x18. */
  continue(
    ctx: AuthContext,
    state: AuthState,
    data: Uint8Array | undefined,
  ): Promise<{ step: AuthStep; state: AuthState }>;
}

/** The methods a broker offers, by name. */
export class AuthMethods {
  private readonly methods = new Map<string, EnhancedAuthMethod>();

  constructor(methods: EnhancedAuthMethod[] = []) {
    for (const m of methods) this.methods.set(m.name, m);
  }

  get(name: string): EnhancedAuthMethod | undefined {
    return this.methods.get(name);
  }

  get names(): string[] {
    return [...this.methods.keys()];
  }
}
