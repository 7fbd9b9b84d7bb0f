/**
 * The HTTP API's list of connected clients (GET /api/clients), as far as one
 * gateway holds them: those whose client id starts with a prefix, in client id
 * order (UTF-16 code units, the order the cursor compares in), a page at a time.
 */
import type { ListedClient, ListedClients } from "../contracts.ts";

/** The most clients one page may ask a gateway for (the API's largest `limit`). */
export const CLIENTS_PER_PAGE = 100;

export interface OnlineClient {
  clientId: string;
  persistent: boolean;
  /** Who it is (the session's owner): asked only of the clients on the page. */
  owner(): string;
}

/**
 * The page after `after` (null: from the first) of `online` filtered by `prefix`:
 * at most `limit` (within 1 and CLIENTS_PER_PAGE) clients, and whether more match.
 * Sorts the matching ids on each call: a gateway holds at most 32,768 sockets, so a
 * page costs at most that many comparisons' sort, and only the API asks.
 */
export function clientPage(
  online: Iterable<OnlineClient>,
  prefix: string,
  after: string | null,
  limit: number,
): ListedClients {
  const take = Math.max(1, Math.min(CLIENTS_PER_PAGE, Math.floor(limit)));
  const matching: OnlineClient[] = [];
  for (const c of online)
    if (c.clientId.startsWith(prefix) && (after === null || c.clientId > after)) matching.push(c);
  matching.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
  const clients: ListedClient[] = matching
    .slice(0, take)
    .map((c) => ({ clientId: c.clientId, owner: c.owner(), persistent: c.persistent }));
  return { clients, more: matching.length > take };
}
