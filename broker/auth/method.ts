/**
 * Enhanced authentication (MQTT 5.0 section 4.12): a method named in CONNECT's
 * Authentication Method runs a challenge/response exchange of AUTH packets. Each
 * method implements this interface; the broker drives the packets.
 */

/** What a step of the exchange decided. */
export type AuthStep =
  | { kind: "success"; data?: Uint8Array }
  | { kind: "continue"; data?: Uint8Array }
  | { kind: "failure"; reasonCode: number; reason: string };

export interface AuthContext {
  clientId: string;
  username?: string;
}

export interface EnhancedAuthMethod {
  /** The Authentication Method string clients send, e.g. "SCRAM-SHA-256". */
  readonly name: string;
  /**
   * First step, with the Authentication Data of CONNECT (or of AUTH 0x19 when the
   * client re-authenticates). Returns the step and the method's state for the next.
   */
  start(ctx: AuthContext, data: Uint8Array | undefined): Promise<{ step: AuthStep; state: unknown }>;
  /** A further step, with the Authentication Data of the client's AUTH 0x18. */
  continue(
    ctx: AuthContext,
    state: unknown,
    data: Uint8Array | undefined,
  ): Promise<{ step: AuthStep; state: unknown }>;
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
