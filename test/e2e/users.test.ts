/**
 * The user store end to end, against a broker of its own configured as a deploy
 * would be (anonymous access off, a pepper, one user in MQTT_PASSWORDS): users
 * added, replaced and removed through the HTTP API and `npm run passwd` log in
 * or are refused at their next CONNECT without a restart; what each login cost
 * (a full PBKDF2 check or a verifier's HMAC) is read from the gateway's counters.
 * Then what a hostile caller tries: names with / + # % and control characters,
 * over-long names, the API without its token, bodies past every bound.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashPassword, passwordEntry } from "../../broker/auth/passwords.ts";
import { ConnectReturnCode, ReasonCode } from "../../mqtt/index.ts";
import { gatewayCounters, type RunningBroker, startBroker } from "../support/broker.ts";
import { connect, unique } from "../support/clients.ts";

const TOKEN = "users-api-token";
const ROOT = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);
let broker: RunningBroker;
let vars: Record<string, string>;

beforeAll(async () => {
  vars = {
    TOPIC_SHARDS: "1",
    GATEWAYS: "1",
    ALLOW_ANONYMOUS: "false",
    API_TOKEN: TOKEN,
    AUTH_PEPPER: "e2e-pepper-0123456789abcdef0123456789",
    MQTT_PASSWORDS: await passwordEntry("carol", "carol-secret"),
    // These tests fail logins on purpose from one address; identity.test.ts tests the limit.
    AUTH_FAILURES_PER_MINUTE: "10000",
    AUTH_FAILURES_PER_MINUTE_GATEWAY: "10000",
  };
  broker = await startBroker({ vars });
}, 120_000);

afterAll(async () => {
  await broker?.stop();
});

const userPath = (name: string) => `/api/users/${encodeURIComponent(name)}`;

/** A call to the API; the status and the JSON answer. */
async function api(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${broker.httpUrl}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/**
 * A PUT of `chunks` × 64 KiB, with a Content-Length or streamed without one: the
 * status, once the answer comes (fetch fails instead when the socket closes
 * under a body it is still sending).
 */
function largePut(path: string, chunks: number, announce: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const headers: Record<string, string | number> = { authorization: `Bearer ${TOKEN}` };
    if (announce) headers["content-length"] = chunks * chunk.length;
    const req = request(`${broker.httpUrl}${path}`, { method: "PUT", headers });
    let sent = 0;
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    const write = () => {
      while (!answered && sent < chunks) {
        sent++;
        if (!req.write(chunk)) return void req.once("drain", write);
      }
      if (!answered) req.end();
    };
    write();
  });
}

/** The CONNACK code MQTT.js gets for these credentials: 0, or the refusal's. */
async function login(version: 4 | 5, username: string, password: string): Promise<number> {
  try {
    const c = await connect(broker.url, {
      protocolVersion: version,
      clientId: unique("u"),
      username,
      password,
    });
    await c.endAsync(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

const REFUSED = { 5: ReasonCode.BadUserNameOrPassword, 4: ConnectReturnCode.BadUserNameOrPassword } as const;

/** How the gateway's login counters moved while `f` ran. */
async function loginCost(f: () => Promise<unknown>): Promise<{ full: number; verifier: number }> {
  const before = await gatewayCounters(broker.httpUrl, TOKEN);
  await f();
  const after = await gatewayCounters(broker.httpUrl, TOKEN);
  const moved = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  return { full: moved("logins_full_check"), verifier: moved("logins_verifier") };
}

describe("users added and removed without a restart", () => {
  it("a user added through the API logs in; removed, its next login is refused with 0x86 (5.0) and 4 (3.1.1)", async () => {
    const name = unique("dana");
    expect(await api("PUT", userPath(name), { password: "dana-pw" })).toEqual({
      status: 201,
      body: { name, created: true },
    });
    expect(await login(5, name, "dana-pw")).toBe(0);
    expect(await login(4, name, "dana-pw")).toBe(0);
    const shown = await api("GET", userPath(name));
    expect(shown.status).toBe(200);
    expect(Object.keys(shown.body).sort()).toEqual(["created", "name", "source", "updated"]);
    expect(shown.body).toMatchObject({ name, source: "store" });
    // A connected client of the user stays connected (DELETE /api/clients/{id} ends it).
    const connected = await connect(broker.url, {
      protocolVersion: 5,
      clientId: unique("dana-c"),
      username: name,
      password: "dana-pw",
    });
    expect(await api("DELETE", userPath(name))).toEqual({ status: 200, body: { deleted: name } });
    expect(await login(5, name, "dana-pw")).toBe(REFUSED[5]);
    expect(await login(4, name, "dana-pw")).toBe(REFUSED[4]);
    expect((await api("GET", userPath(name))).status).toBe(404);
    expect((await api("DELETE", userPath(name))).status).toBe(404);
    expect(connected.connected).toBe(true);
    await connected.endAsync(true);
  });

  it("the second login is one HMAC; a wrong password still costs a full check; a new password ends the old at once", async () => {
    const name = unique("erin");
    expect((await api("PUT", userPath(name), { hash: await hashPassword("erin-pw") })).status).toBe(201);
    expect(await loginCost(() => login(5, name, "erin-pw"))).toEqual({ full: 1, verifier: 0 });
    expect(await loginCost(() => login(5, name, "erin-pw"))).toEqual({ full: 0, verifier: 1 });
    // A hostile client with the name tries passwords: each one is a full check, and refused.
    const wrong = await loginCost(async () => {
      for (const guess of ["erin-pw ", "ERIN-PW", "", "erin-pw\0"])
        expect(await login(5, name, guess), JSON.stringify(guess)).toBe(REFUSED[5]);
    });
    expect(wrong).toEqual({ full: 4, verifier: 0 });
    expect(await api("PUT", userPath(name), { password: "erin-new" })).toEqual({
      status: 200,
      body: { name, created: false },
    });
    expect(await loginCost(() => login(4, name, "erin-pw"))).toEqual({ full: 1, verifier: 0 });
    expect(await login(4, name, "erin-pw")).toBe(REFUSED[4]);
    expect(await login(4, name, "erin-new")).toBe(0);
  });

  it("an unknown user costs a full check too (a decoy), so timing tells nothing", async () => {
    const cost = await loginCost(async () => expect(await login(5, unique("nobody"), "pw")).toBe(REFUSED[5]));
    expect(cost).toEqual({ full: 1, verifier: 0 });
  });

  it("MQTT_PASSWORDS wins: the API neither sets nor removes its users, and they log in with the secret's password", async () => {
    expect(await api("GET", userPath("carol"))).toEqual({
      status: 200,
      body: { name: "carol", source: "MQTT_PASSWORDS" },
    });
    expect((await api("PUT", userPath("carol"), { password: "taken-over" })).status).toBe(409);
    expect((await api("DELETE", userPath("carol"))).status).toBe(409);
    const hash = await hashPassword("taken-over");
    expect((await api("POST", "/api/users", { users: [{ name: "carol", hash }] })).status).toBe(409);
    expect(await login(5, "carol", "taken-over")).toBe(REFUSED[5]);
    expect(await login(5, "carol", "carol-secret")).toBe(0);
    // Its logins are remembered like the store's.
    expect(await loginCost(() => login(5, "carol", "carol-secret"))).toEqual({ full: 0, verifier: 1 });
  });

  it("lists every user once, in pages no longer than asked, until next is null", async () => {
    const prefix = unique("page");
    const hash = await hashPassword("pw");
    const names = Array.from({ length: 25 }, (_, i) => `${prefix}-${i}`);
    expect(await api("POST", "/api/users", { users: names.map((name) => ({ name, hash })) })).toEqual({
      status: 200,
      body: { created: 25, replaced: 0 },
    });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await api("GET", `/api/users?limit=7${query}`);
      expect(page.status).toBe(200);
      const users = page.body.users as Array<{ name: string; source: string }>;
      expect(users.length).toBeLessThanOrEqual(7);
      seen.push(...users.map((u) => u.name));
      cursor = page.body.next as string | null;
      pages++;
    } while (cursor !== null && pages < 1000);
    expect(cursor).toBeNull();
    expect(seen.filter((n) => n.startsWith(`${prefix}-`)).sort()).toEqual([...names].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).not.toContain("carol");
    expect(await login(4, names[13] as string, "pw")).toBe(0);
  });
});

describe("the OpenAPI document", () => {
  it("describes every users call, and the bounds a client can check before calling", async () => {
    const doc = (await (await fetch(`${broker.httpUrl}/api/openapi.json`)).json()) as {
      paths: Record<
        string,
        Record<string, { parameters?: Array<{ name: string; schema: { maximum?: number } }> }>
      >;
    };
    expect(Object.keys(doc.paths["/api/users"] ?? {}).sort()).toEqual(["get", "post"]);
    expect(Object.keys(doc.paths["/api/users/{name}"] ?? {}).sort()).toEqual(["delete", "get", "put"]);
    const limit = doc.paths["/api/users"]?.get?.parameters?.find((p) => p.name === "limit");
    expect(limit?.schema.maximum).toBe(1000);
  });
});

describe("npm run passwd against a running broker", () => {
  const passwd = (...args: string[]) =>
    run(join(ROOT, "node_modules/.bin/node"), ["scripts/passwd.ts", "--api", broker.httpUrl, ...args], {
      cwd: ROOT,
      env: { ...process.env, NIMBUS_API_TOKEN: TOKEN },
    });

  it("adds, shows, lists, imports and removes users; the password is hashed by the script", async () => {
    const name = unique("frank");
    expect((await passwd(name, "frank-pw")).stdout).toBe(`added ${name}\n`);
    expect(await login(5, name, "frank-pw")).toBe(0);
    expect(JSON.parse((await passwd("--show", name)).stdout)).toMatchObject({ name, source: "store" });
    expect((await passwd("--list")).stdout.split("\n")).toContain(name);
    expect((await passwd(name, "frank-new")).stdout).toBe(`replaced ${name}\n`);
    expect(await login(5, name, "frank-pw")).toBe(REFUSED[5]);
    expect((await passwd("--remove", name)).stdout).toBe(`removed ${name}\n`);
    expect(await login(5, name, "frank-new")).toBe(REFUSED[5]);

    const file = join(mkdtempSync(join(tmpdir(), "nimbus-users-")), "passwords.txt");
    const imported = [unique("gina"), unique("hal")];
    writeFileSync(
      file,
      `${await passwordEntry(imported[0] as string, "g")}\n${await passwordEntry(imported[1] as string, "h")}\n`,
    );
    expect((await passwd("--import", file)).stdout).toBe(`imported 2 users from ${file}\n`);
    expect(await login(4, imported[1] as string, "h")).toBe(0);
    // Without the token, or with a wrong one, the script says so and fails.
    await expect(
      run(join(ROOT, "node_modules/.bin/node"), ["scripts/passwd.ts", "--api", broker.httpUrl, "--list"], {
        cwd: ROOT,
        env: { ...process.env, NIMBUS_API_TOKEN: "wrong" },
      }),
    ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("401") });
  });
});

describe("hostile names and callers", () => {
  it("stores names with / + # % exactly, one path segment each, and they log in under that exact name", async () => {
    const tag = unique("h");
    for (const name of [
      `${tag}/a`,
      `${tag}+`,
      `${tag}#`,
      `${tag}%`,
      `${tag}%2F`,
      `${tag} x`,
      `${tag}/名前/😀`,
      "+",
      "#",
    ]) {
      const put = await api("PUT", userPath(name), { password: "pw" });
      expect(put.status, name).toBe(201);
      expect(put.body.name).toBe(name);
      expect((await api("GET", userPath(name))).body.name).toBe(name);
      expect(await login(5, name, "pw"), name).toBe(0);
    }
    // "%2F" stored literally is not "/": double encoding never decodes twice.
    expect((await api("GET", `/api/users/${encodeURIComponent(`${tag}%2F`)}`)).body.name).toBe(`${tag}%2F`);
    expect(await login(5, `${tag}/`, "pw")).toBe(REFUSED[5]);
    // An unencoded "/" is not part of a name: no such endpoint, and nothing stored.
    expect((await api("PUT", `/api/users/${tag}-b/c`, { password: "pw" })).status).toBe(404);
    expect((await api("GET", userPath(`${tag}-b`))).status).toBe(404);
    expect((await api("GET", userPath(`${tag}-b/c`))).status).toBe(404);
  });

  it("refuses control characters, malformed percent-encoding, lone surrogates and names past 256 bytes", async () => {
    for (const name of ["a\u0000b", "a\nb", "\t", "a\u007f", "a\u009b", "\u001b[31m"]) {
      const put = await api("PUT", userPath(name), { password: "pw" });
      expect(put.status, JSON.stringify(name)).toBe(400);
      expect(put.body.error).toMatch(/control/);
    }
    for (const raw of ["%", "%E0%A4%A", "%FF", "%ED%A0%80"]) {
      expect((await api("PUT", `/api/users/${raw}`, { password: "pw" })).status, raw).toBe(400);
    }
    const long = `${"é".repeat(128)}x`;
    const tooLong = await api("PUT", userPath(long), { password: "pw" });
    expect(tooLong).toEqual({
      status: 400,
      body: { error: "user name of 257 bytes; at most 256", status: 400 },
    });
    expect((await api("PUT", userPath("é".repeat(128)), { password: "pw" })).status).toBeLessThan(300);
    const imported = await api("POST", "/api/users", {
      users: [{ name: "x".repeat(257), hash: await hashPassword("pw") }],
    });
    expect(imported.status).toBe(400);
    expect(imported.body.error).toMatch(/^users\[0\]: user name of 257 bytes/);
    const surrogate = await api(
      "POST",
      "/api/users",
      `{"users":[{"name":"a\\ud800","hash":"${await hashPassword("pw")}"}]}`,
    );
    expect(surrogate.status).toBe(400);
    expect(surrogate.body.error).toMatch(/well-formed/);
  });

  it("without the bearer token nothing is read or changed", async () => {
    const name = unique("ivy");
    expect((await api("PUT", userPath(name), { password: "pw" })).status).toBe(201);
    const callers: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: TOKEN },
      { authorization: `Basic ${TOKEN}` },
      { authorization: `Bearer ${TOKEN}x` },
    ];
    for (const headers of callers) {
      expect((await api("GET", userPath(name), undefined, headers)).status).toBe(401);
      expect((await api("DELETE", userPath(name), undefined, headers)).status).toBe(401);
      expect((await api("PUT", userPath(name), { password: "mine" }, headers)).status).toBe(401);
      expect((await api("PUT", userPath(`${name}-new`), { password: "mine" }, headers)).status).toBe(401);
      expect((await api("GET", "/api/users", undefined, headers)).status).toBe(401);
      expect((await api("POST", "/api/users", { users: [] }, headers)).status).toBe(401);
    }
    expect(await login(5, name, "pw")).toBe(0);
    expect(await login(5, name, "mine")).toBe(REFUSED[5]);
    expect((await api("GET", userPath(`${name}-new`))).status).toBe(404);
  });

  it("bounds: 8 KiB a PUT, 2 MiB and 1,000 users an import, 1,024-byte passwords, 1,000 a page", async () => {
    const name = unique("jay");
    // 8 KiB exactly (padded with white space) is taken; a byte more is not, read or not.
    const body = JSON.stringify({ password: "pw" });
    expect((await api("PUT", userPath(name), body.padEnd(8 * 1024, " "))).status).toBe(201);
    expect((await api("PUT", userPath(name), body.padEnd(8 * 1024 + 1, " "))).status).toBe(413);
    // 64 MiB with a Content-Length: refused from the header, without reading it
    // (wrangler dev's proxy takes the whole body first; Cloudflare streams it).
    expect(await largePut(userPath(name), 1024, true)).toBe(413);
    // Streamed without a length: read only until past the bound. (128 KiB: with
    // more still coming when the Worker answers, wrangler dev's proxy sometimes
    // answers 500 itself, or resets the connection.)
    expect(await largePut(userPath(name), 2, false)).toBe(413);
    expect(await login(5, name, "pw")).toBe(0);

    expect((await api("PUT", userPath(name), { password: "p".repeat(1025) })).status).toBe(400);
    expect((await api("PUT", userPath(name), { password: "p".repeat(1024) })).status).toBe(200);
    expect(await login(5, name, "p".repeat(1024))).toBe(0);
    for (const bad of [
      {},
      { password: "" },
      { password: 1 },
      { password: "a", hash: await hashPassword("a") },
      { password: "a", admin: true },
      { password: "pw\u0000" },
      { hash: (await hashPassword("a")).replace(":100000:", ":1000:") },
      [],
    ]) {
      expect((await api("PUT", userPath(name), bad)).status, JSON.stringify(bad)).toBe(400);
    }
    expect((await api("PUT", userPath(name), "not json")).status).toBe(400);

    const hash = await hashPassword("pw");
    const prefix = unique("bulk");
    const users = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${i}`, hash }));
    const many = await api("POST", "/api/users", { users: users(1001) });
    expect(many).toEqual({ status: 400, body: { error: "1001 users; at most 1000 a call", status: 400 } });
    expect(await api("POST", "/api/users", { users: users(1000) })).toEqual({
      status: 200,
      body: { created: 1000, replaced: 0 },
    });
    expect(await login(4, `${prefix}-999`, "pw")).toBe(0);
    const twice = await api("POST", "/api/users", { users: [users(1)[0], users(1)[0]] });
    expect(twice.status).toBe(400);
    const padded = JSON.stringify({ users: [] }).padEnd(2 * 2 ** 20 + 1, " ");
    expect((await api("POST", "/api/users", padded)).status).toBe(413);

    expect((await api("GET", "/api/users?limit=1001")).status).toBe(400);
    expect((await api("GET", "/api/users?limit=0")).status).toBe(400);
    expect((await api("GET", "/api/users?limit=2.5")).status).toBe(400);
    const full = await api("GET", "/api/users?limit=1000");
    expect(full.status).toBe(200);
    expect((full.body.users as unknown[]).length).toBeLessThanOrEqual(1000);
    for (const cursor of ["x", "WzY0LG51bGxd", "WzAsIlx1MDAwMSJd", btoa("[1]")])
      expect((await api("GET", `/api/users?cursor=${cursor}`)).status, cursor).toBe(400);
  });
});

describe("after a restart", () => {
  it("a user who logged in before logs in again with one HMAC: verifiers are kept in storage", async () => {
    const name = unique("kim");
    expect((await api("PUT", userPath(name), { password: "kim-pw" })).status).toBe(201);
    expect(await login(5, name, "kim-pw")).toBe(0);
    await broker.stop();
    broker = await startBroker({ vars, persistTo: broker.persistTo });
    expect(await loginCost(() => login(5, name, "kim-pw"))).toEqual({ full: 0, verifier: 1 });
    expect(await loginCost(() => login(5, name, "kim-wrong"))).toEqual({ full: 1, verifier: 0 });
  }, 120_000);
});
