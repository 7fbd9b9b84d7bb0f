/**
 * Who a connected client is for authorization (DESIGN.md, Identity): its client id
 * and the identity it authenticated as (a name, a token's rules).
 */
import type { Principal } from "./acl.ts";
import type { Identity } from "./auth/authenticator.ts";

export function principalOf(clientId: string, identity: Identity): Principal {
  const p: Principal = { clientId };
  if (identity.username !== undefined) p.username = identity.username;
  if (identity.rules !== undefined) p.rules = identity.rules;
  return p;
}
