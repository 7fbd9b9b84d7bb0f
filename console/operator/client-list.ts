/**
 * Listing online clients by client id prefix (README, "Web console"; the server's
 * side is worker/clients-api.ts):
 *
 *   GET /api/clients?prefix=<p>&limit=<n>&cursor=<c>
 *   → 200 {"clients": [{"clientId", "owner", "gateway", "persistent"}, …], "next": "<cursor>" | null}
 *
 * Clients connected now, whose id starts with `prefix` (empty: all), in client id
 * order within each gateway, gateway after gateway; `limit` from 1 to 100 (default
 * 50); a page may be short with more to come: go on while `next` is not null, as
 * GET /api/users pages. A server of an earlier release answers 404 "no such
 * endpoint": the console then looks the prefix up as a whole client id
 * (GET /api/clients/{id}), which finds a client whose id the operator knows,
 * online or stored.
 */
import type { OperatorApi } from "./api.ts";

export interface ListedClient {
  clientId: string;
  owner: string | null;
  /** The gateway holding its connection; null for a stored session found by its id. */
  gateway: string | null;
  persistent: boolean;
  online: boolean;
}

export interface ClientPage {
  clients: ListedClient[];
  next: string | null;
  /** "list": the server listed them; "exact": the server cannot list, this is the id looked up. */
  source: "list" | "exact";
}

export const PAGE_LIMIT = 50;

export async function listClients(
  api: OperatorApi,
  prefix: string,
  cursor: string | null,
): Promise<ClientPage> {
  const query = new URLSearchParams({ prefix, limit: String(PAGE_LIMIT) });
  if (cursor !== null) query.set("cursor", cursor);
  const res = await api.call(`/api/clients?${query}`);
  if (res.ok) {
    const body = (await res.json()) as { clients: Array<Omit<ListedClient, "online">>; next: string | null };
    return {
      clients: body.clients.slice(0, PAGE_LIMIT).map((c) => ({ ...c, online: true })),
      next: typeof body.next === "string" ? body.next : null,
      source: "list",
    };
  }
  // 404: no listing on this server (yet). The prefix as a whole id, if there is one.
  if (prefix === "") return { clients: [], next: null, source: "exact" };
  const info = await api.client(prefix);
  return {
    clients:
      info === null
        ? []
        : [
            {
              clientId: info.clientId,
              owner: info.owner,
              gateway: info.gateway,
              persistent: info.persistent,
              online: info.online,
            },
          ],
    next: null,
    source: "exact",
  };
}
