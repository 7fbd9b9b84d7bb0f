/**
 * The user store through the HTTP API (README, HTTP API; DESIGN.md, "Users"):
 *
 *   PUT    /api/users/{name}   {"password": "…"} or {"hash": "pbkdf2-sha256:100000:…"}
 *   GET    /api/users/{name}   the user, never its hash
 *   DELETE /api/users/{name}
 *   GET    /api/users?limit=&cursor=   a page of users
 *   POST   /api/users          {"users": [{"name", "hash"}, …]}: a page of an import
 *
 * The name is one path segment, percent-encoded (`a%2Fb` is the user "a/b"). A
 * password given here is hashed here, in the stateless Worker; an import takes
 * hashes only (a password costs 35 ms of PBKDF2). Names in MQTT_PASSWORDS are
 * the secret's: the API neither sets nor removes them (409).
 */
import { hashPassword, PasswordFile, passwordHashProblem } from "../broker/auth/passwords.ts";

import { userNameProblem } from "../broker/auth/user-names.ts";

import type { NewUser, UserInfo } from "../durable-objects/contracts.ts";
import { USER_SHARDS, USERS_PER_CALL, userShardOf, userShardStub } from "../durable-objects/user-shard.ts";
import { boundedJson } from "./bounded-body.ts";
import type { Env } from "./env.ts";
import { readPageCursor, writePageCursor } from "./page-cursor.ts";
import { apiError, json } from "./responses.ts";

/** A PUT's body: a password or a hash, with room for JSON escapes. */
export const USER_BODY_BYTES = 8 * 1024;
/** An import's body: USERS_PER_CALL users, each name escaped at worst (6 bytes a code unit). */
export const IMPORT_BODY_BYTES = 2 * 1024 * 1024;
/** Longest password the API hashes, UTF-8 bytes. */
export const MAX_PASSWORD_BYTES = 1024;
export const DEFAULT_PAGE = 100;
/** Buckets one listing request reads at most (each is a call: a request's subrequests are bounded). */
export const LIST_CALLS = 16;
/** Buckets an import page writes to at once. */
const IMPORT_CONCURRENCY = 8;

export async function handleUsers(request: Request, env: Env, url: URL): Promise<Response> {
  const path = url.pathname;
  if (path === "/api/users") {
    if (request.method === "GET") return list(url, env);
    if (request.method === "POST") return importUsers(request, env);
    return apiError(405, "use GET or POST");
  }
  const segment = path.slice("/api/users/".length);
  // A name with "/" comes percent-encoded, as one segment.
  if (segment === "" || segment.includes("/"))
    return apiError(404, `no such endpoint: ${request.method} ${path}`);
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return apiError(400, "the user name is not well-formed percent-encoded UTF-8");
  }
  const problem = userNameProblem(name);
  if (problem !== null) return apiError(400, problem);
  const secret = new PasswordFile(env.MQTT_PASSWORDS ?? "");
  const stub = userShardStub(env, userShardOf(name));
  switch (request.method) {
    case "GET": {
      if (secret.has(name)) return json({ name, source: "MQTT_PASSWORDS" });
      const user = await stub.get(name);
      return user === null ? apiError(404, `no user ${JSON.stringify(name)}`) : json(shown(user));
    }
    case "PUT": {
      if (secret.has(name)) return inSecret(name);
      const body = await boundedJson(request, USER_BODY_BYTES);
      if (!body.ok) return body.response;
      const hash = await hashOf(body.value);
      if (typeof hash !== "string") return hash;
      const created = (await stub.put([{ name, hash }], Date.now())) === 1;
      return json({ name, created }, created ? 201 : 200);
    }
    case "DELETE": {
      if (secret.has(name)) return inSecret(name);
      return (await stub.remove(name))
        ? json({ deleted: name })
        : apiError(404, `no user ${JSON.stringify(name)}`);
    }
    default:
      return apiError(405, "use GET, PUT or DELETE");
  }
}

function inSecret(name: string): Response {
  return apiError(
    409,
    `${JSON.stringify(name)} is in MQTT_PASSWORDS, which the API does not change: edit the secret and deploy`,
  );
}

function shown(user: UserInfo) {
  return {
    name: user.name,
    source: "store",
    created: new Date(user.created).toISOString(),
    updated: new Date(user.updated).toISOString(),
  };
}

/** A PUT body's hash: the given one checked, or the password's; else the answer. */
async function hashOf(body: unknown): Promise<string | Response> {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    return apiError(400, 'the body is {"password": "…"} or {"hash": "pbkdf2-sha256:…"}');
  const keys = Object.keys(body);
  const { password, hash } = body as Record<string, unknown>;
  if (keys.length !== 1 || (password === undefined) === (hash === undefined))
    return apiError(400, 'the body is {"password": "…"} or {"hash": "pbkdf2-sha256:…"}, one of them');
  if (hash !== undefined) {
    const problem = typeof hash === "string" ? passwordHashProblem(hash) : "a hash is a string";
    return problem === null ? (hash as string) : apiError(400, problem);
  }
  if (typeof password !== "string" || password === "")
    return apiError(400, "a password is a non-empty string");
  // PBKDF2 pads its key with zero bytes: "pw\0" would accept "pw" as well.
  if (password.includes("\0")) return apiError(400, "a password has no U+0000");
  const bytes = new TextEncoder().encode(password).length;
  if (bytes > MAX_PASSWORD_BYTES)
    return apiError(400, `password of ${bytes} bytes; at most ${MAX_PASSWORD_BYTES}`);
  return hashPassword(password);
}

/** POST /api/users: up to USERS_PER_CALL users with their hashes, one call per bucket. */
async function importUsers(request: Request, env: Env): Promise<Response> {
  const body = await boundedJson(request, IMPORT_BODY_BYTES);
  if (!body.ok) return body.response;
  const given = (body.value as { users?: unknown } | null)?.users;
  if (!Array.isArray(given)) return apiError(400, 'the body is {"users": [{"name": "…", "hash": "…"}, …]}');
  if (given.length > USERS_PER_CALL)
    return apiError(400, `${given.length} users; at most ${USERS_PER_CALL} a call`);
  const secret = new PasswordFile(env.MQTT_PASSWORDS ?? "");
  const buckets = new Map<number, NewUser[]>();
  const seen = new Set<string>();
  for (const [i, u] of given.entries()) {
    const { name, hash } = (u ?? {}) as Record<string, unknown>;
    if (typeof name !== "string" || typeof hash !== "string")
      return apiError(400, `users[${i}]: {"name": "…", "hash": "…"}`);
    const problem = userNameProblem(name) ?? passwordHashProblem(hash);
    if (problem !== null) return apiError(400, `users[${i}]: ${problem}`);
    if (seen.has(name)) return apiError(400, `users[${i}]: ${JSON.stringify(name)} twice`);
    if (secret.has(name)) return inSecret(name);
    seen.add(name);
    const shard = userShardOf(name);
    const list = buckets.get(shard) ?? [];
    list.push({ name, hash });
    buckets.set(shard, list);
  }
  const now = Date.now();
  const entries = [...buckets];
  let created = 0;
  for (let i = 0; i < entries.length; i += IMPORT_CONCURRENCY) {
    const counts = await Promise.all(
      entries
        .slice(i, i + IMPORT_CONCURRENCY)
        .map(([shard, users]) => userShardStub(env, shard).put(users, now)),
    );
    for (const n of counts) created += n;
  }
  return json({ created, replaced: given.length - created });
}

/**
 * GET /api/users: users by bucket, then by name, from the cursor on. A page
 * reads at most LIST_CALLS buckets, so it may hold fewer than `limit` users
 * with more to come: the listing is over when `next` is null.
 */
async function list(url: URL, env: Env): Promise<Response> {
  const limitText = url.searchParams.get("limit");
  const limit = limitText === null ? DEFAULT_PAGE : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > USERS_PER_CALL)
    return apiError(400, `limit is a whole number from 1 to ${USERS_PER_CALL}`);
  const cursorText = url.searchParams.get("cursor");
  const cursor =
    cursorText === null
      ? { index: 0, after: null }
      : readPageCursor(cursorText, USER_SHARDS, (name) => userNameProblem(name) === null);
  if (cursor === undefined) return apiError(400, "not a cursor of this API");
  let { index: shard, after } = cursor;
  const users: ReturnType<typeof shown>[] = [];
  for (let calls = 0; calls < LIST_CALLS && shard < USER_SHARDS && users.length < limit; calls++) {
    const page = await userShardStub(env, shard).page(after, limit - users.length);
    users.push(...page.users.map(shown));
    if (page.more) {
      after = (page.users.at(-1) as UserInfo).name;
    } else {
      shard++;
      after = null;
    }
  }
  return json({ users, next: shard < USER_SHARDS ? writePageCursor({ index: shard, after }) : null });
}
