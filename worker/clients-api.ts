/**
 * GET /api/clients?prefix=&limit=&cursor=: the clients connected now whose id
 * starts with `prefix` (empty: all), in client id order within each gateway,
 * gateway after gateway (the console's client list pages through it).
 *
 * A page asks at most LIST_GATEWAYS gateways, so it may be short (even empty)
 * with more to come: the listing is over when `next` is null. A gateway answers
 * from its sockets in memory; what it holds is at most 32,768 clients.
 */

import { readConfig } from "../broker/config.ts";
import { gatewayNames } from "../broker/gateways.ts";
import type { ListedClient } from "../durable-objects/contracts.ts";
import { CLIENTS_PER_PAGE } from "../durable-objects/gateway/client-list.ts";
import { gatewayStub } from "../durable-objects/stubs.ts";
import type { Env } from "./env.ts";
import { readPageCursor, writePageCursor } from "./page-cursor.ts";
import { apiError, json } from "./responses.ts";

export const DEFAULT_CLIENTS_PAGE = 50;
/** Gateways one page may call (the users' listing reads as many buckets). */
export const LIST_GATEWAYS = 16;
/** A prefix or cursor key longer than any client id matches nothing: refused instead. */
const MAX_KEY_LENGTH = 1024;

export async function listClients(url: URL, env: Env): Promise<Response> {
  const params = url.searchParams;
  const limitText = params.get("limit");
  const limit = limitText === null ? DEFAULT_CLIENTS_PAGE : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > CLIENTS_PER_PAGE)
    return apiError(400, `limit is a whole number from 1 to ${CLIENTS_PER_PAGE}`);
  const prefix = params.get("prefix") ?? "";
  if (prefix.length > MAX_KEY_LENGTH) return apiError(400, `prefix is at most ${MAX_KEY_LENGTH} characters`);
  const names = gatewayNames(readConfig(env));
  const cursorText = params.get("cursor");
  const cursor =
    cursorText === null
      ? { index: 0, after: null }
      : readPageCursor(
          cursorText,
          names.length,
          (id) => id.length <= MAX_KEY_LENGTH && id.startsWith(prefix),
        );
  if (cursor === undefined) return apiError(400, "not a cursor of this API for this prefix");

  let { index, after } = cursor;
  const clients: Array<ListedClient & { gateway: string }> = [];
  for (let calls = 0; calls < LIST_GATEWAYS && index < names.length && clients.length < limit; calls++) {
    const gateway = names[index] as string;
    const page = await gatewayStub(env, gateway).clients(prefix, after, limit - clients.length);
    clients.push(...page.clients.map((c) => ({ ...c, gateway })));
    if (page.more && page.clients.length > 0) {
      after = (page.clients.at(-1) as ListedClient).clientId;
    } else {
      index++;
      after = null;
    }
  }
  return json({ clients, next: index < names.length ? writePageCursor({ index, after }) : null });
}
