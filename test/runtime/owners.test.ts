/**
 * Principals are namespaced per way in (ownerOf): "user:bob" is a password user,
 * "jwt:bob" a token's subject. Records written by an earlier release hold
 * "user:<name>" for every named principal: the same login still claims such a
 * session (or a registry's row) once after the upgrade, and the claim records
 * the namespaced owner; a record written since is its own principal's only.
 */
import { runInDurableObject } from "cloudflare:test";

import { env } from "cloudflare:workers";

import { describe, expect, it } from "vitest";

import { parse, stringify } from "../../broker/json.ts";

import { registryName } from "../../broker/routing.ts";

import { emptySessionState } from "../../broker/session-state.ts";
import type { SessionRpc } from "../../durable-objects/contracts.ts";
import { registryStub, sessionStub } from "../../durable-objects/stubs.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;

const request = (clientId: string, owner: string, connId: string, persistent: boolean) => ({
  clientId,
  owner,
  gateway: "owners-gw",
  connId,
  cleanStart: false,
  persistent,
  expiry: persistent ? 600 : 0,
});

/** Claims persistently as `owner`, then parks: an offline stored session. */
async function storedAs(s: SessionRpc, clientId: string, owner: string, connId: string) {
  const claimed = await s.claim(request(clientId, owner, connId, true));
  await s.park("owners-gw", connId, emptySessionState(), 600);
  return claimed.result;
}

/** Rewrites a Session's record as a release before namespaced owners left it. */
async function asEarlierRelease(clientId: string): Promise<void> {
  const stub = bindings.SESSION.get(bindings.SESSION.idFromName(clientId));
  await runInDurableObject(stub, (_instance, state) => {
    const meta = parse<Record<string, unknown>>(state.storage.kv.get<string>("session") as string);
    delete meta.namespaced;
    state.storage.kv.put("session", stringify(meta));
  });
}

describe("stored sessions and namespaced owners", () => {
  it("a session an earlier release recorded as user:bob is claimed by token subject bob, then is bob-the-token's only", async () => {
    const id = "owners-legacy";
    const s = sessionStub(bindings, id);
    await storedAs(s, id, "user:bob", "c1");
    await asEarlierRelease(id);
    const resumed = await s.claim(request(id, "jwt:bob", "c2", true));
    expect(resumed.result).toMatchObject({ granted: true, sessionPresent: true });
    await s.park("owners-gw", "c2", emptySessionState(), 600);
    expect((await s.info()).result?.owner).toBe("jwt:bob");
    // Recorded namespaced now: the password user bob is another principal.
    expect((await s.claim(request(id, "user:bob", "c3", true))).result).toEqual({ granted: false });
    expect((await s.claim(request(id, "jwt:bob", "c4", true))).result).toMatchObject({ granted: true });
  });

  it("a session recorded since is refused to the same name by another way in", async () => {
    const id = "owners-new";
    const s = sessionStub(bindings, id);
    await storedAs(s, id, "user:carol", "c1");
    for (const other of ["jwt:carol", "auth:carol", "anon:carol"])
      expect((await s.claim(request(id, other, `as-${other}`, true))).result).toEqual({ granted: false });
    expect((await s.claim(request(id, "user:carol", "c2", true))).result).toMatchObject({
      granted: true,
      sessionPresent: true,
    });
  });
});

describe("a registry's clean rows and namespaced owners", () => {
  it("a row an earlier release wrote as user:dave lets token subject dave in; a row written since does not", async () => {
    const legacy = "owners-clean-legacy";
    const r = registryStub(bindings, legacy);
    expect((await r.claim(request(legacy, "user:dave", "c1", false))).granted).toBe(true);
    const stub = bindings.REGISTRY.get(bindings.REGISTRY.idFromName(registryName(legacy)));
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec("UPDATE clean SET namespaced = 0 WHERE client_id = ?", legacy);
    });
    expect((await r.claim(request(legacy, "jwt:dave", "c2", false))).granted).toBe(true);

    const fresh = "owners-clean-new";
    const f = registryStub(bindings, fresh);
    expect((await f.claim(request(fresh, "user:erin", "c1", false))).granted).toBe(true);
    expect((await f.claim(request(fresh, "jwt:erin", "c2", false))).granted).toBe(false);
    expect((await f.claim(request(fresh, "user:erin", "c3", false))).granted).toBe(true);
  });
});
