/**
 * Registry: for the client ids that hash to it (REGISTRY_BUCKETS), who holds each
 * one's connection, so that a clean session needs no object of its own
 * (DESIGN.md, "Connecting").
 *
 * - A *clean* session (nothing kept after the connection) whose client id has no
 *   stored session is the registry's alone: a row naming its owner (the
 *   principal), gateway and connection while it is connected. Connecting costs a
 *   call here and one row, where a Session object of its own cost an object and
 *   its database, created and deleted at every connect.
 * - Every other connect (a persistent session, or any client id a Session may hold
 *   state for) goes on to the client id's Session, as before; the registry notes
 *   that the id has a Session (`stored`) until the Session says it has forgotten it.
 * - Every connect of a client id comes here first and runs alone for that id, so a
 *   newer connection always finds the older one, whoever holds it: an older clean
 *   one is ended here (its gateway discards it), an older persistent one by its
 *   Session (takeover), as MQTT-3.1.4-2 asks. Invariant 7: a principal other than
 *   the connected owner of a clean session is refused, as the Session refuses one
 *   for a stored session.
 */
import { DurableObject } from "cloudflare:workers";

import { legacyOwnerOf } from "../broker/auth/authenticator.ts";

import { type BrokerConfig, readConfig } from "../broker/config.ts";

import { log, setLogLevel } from "../broker/log.ts";

import { meteredSql } from "../broker/metered-sql.ts";

import { type Migration, migrate } from "../broker/migrations.ts";

import { KeyedMutex } from "../broker/mutex.ts";

import { emptySessionState } from "../broker/session-state.ts";

import { ReasonCode } from "../mqtt/index.ts";

import type { Env } from "../worker/env.ts";
import type { ClaimRequest, Ended, RegistryClaim, RegistryRpc, SessionInfo } from "./contracts.ts";
import { gatewayStub, sessionStub, shardStub } from "./stubs.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS clean (
  client_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  gateway TEXT NOT NULL,
  conn_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stored (client_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
`;
export const REGISTRY_MIGRATIONS: readonly Migration[] = [
  { to: 1, about: "baseline: clean sessions connected, client ids with a Session", sql: SCHEMA },
  {
    to: 2,
    about: "owners namespaced per way in: rows written before hold an earlier release's user:<name>",
    sql: "ALTER TABLE clean ADD COLUMN namespaced INTEGER NOT NULL DEFAULT 0",
  },
  {
    to: 3,
    about:
      "tables keyed by client id WITHOUT ROWID: a connect's row and its key are one row written, not two (a table and its index), at every connect and every close",
    sql: `
CREATE TABLE clean_by_id (
  client_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  gateway TEXT NOT NULL,
  conn_id TEXT NOT NULL,
  namespaced INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO clean_by_id (client_id, owner, gateway, conn_id, namespaced)
  SELECT client_id, owner, gateway, conn_id, namespaced FROM clean;
DROP TABLE clean;
ALTER TABLE clean_by_id RENAME TO clean;
CREATE TABLE stored_by_id (client_id TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO stored_by_id (client_id) SELECT client_id FROM stored;
DROP TABLE stored;
ALTER TABLE stored_by_id RENAME TO stored;
`,
  },
];

type CleanRow = { owner: string; gateway: string; conn_id: string; namespaced: number };

export class Registry extends DurableObject<Env> implements RegistryRpc {
  private readonly config: BrokerConfig;
  private readonly locks = new KeyedMutex<string>();
  /**
   * Until when a client id this registry has never seen may still have a Session
   * from a release before registries (a deployment older than them): such ids go
   * to their Session, as every connect did then. 0 for a deployment born with them.
   */
  private legacyUntil: Promise<number> | undefined;
  /** This object's SQLite, with rows written counted: its answers report them (billed). */
  private readonly sql: SqlStorage;
  private rowsWritten = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage.sql, "Registry", REGISTRY_MIGRATIONS);
    this.sql = meteredSql(ctx.storage.sql, (n) => {
      this.rowsWritten += n;
    });
    this.config = readConfig(env);
    setLogLevel(env.LOG_LEVEL);
  }

  /** A new connection for a client id (Session.claim's request): who holds it now. */
  claim(req: ClaimRequest): Promise<RegistryClaim> {
    return this.locks.run(req.clientId, async () => {
      const rows = this.rowsWritten;
      const { clean, stored } = this.lookup(req.clientId);
      if (clean !== undefined) {
        // A row from before owners were namespaced holds the same login's older key.
        const owned =
          clean.owner === req.owner || (clean.namespaced === 0 && clean.owner === legacyOwnerOf(req.owner));
        if (!owned) {
          log("warn", "claim_refused", {
            clientId: req.clientId,
            reason: "client id in use by another principal",
          });
          return { granted: false, rowsWritten: 0 };
        }
        // MQTT-3.1.4-2: the older connection ends; a clean session ends with it.
        if (clean.conn_id !== req.connId)
          await gatewayStub(this.env, clean.gateway).discard(req.clientId, clean.conn_id);
        this.sql.exec("DELETE FROM clean WHERE client_id = ?", req.clientId);
      }
      if (!req.persistent && !(stored || (await this.legacySessionsMayExist()))) {
        this.sql.exec(
          "INSERT INTO clean (client_id, owner, gateway, conn_id, namespaced) VALUES (?, ?, ?, ?, 1)",
          req.clientId,
          req.owner,
          req.gateway,
          req.connId,
        );
        return {
          granted: true,
          sessionPresent: false,
          state: emptySessionState(),
          switchNeeded: false,
          registrar: "registry",
          rowsWritten: this.rowsWritten - rows,
        };
      }
      const { result, usage } = await sessionStub(this.env, req.clientId).claim(req);
      if (!result.granted) return { ...result, session: usage, rowsWritten: this.rowsWritten - rows };
      this.sql.exec("INSERT OR IGNORE INTO stored (client_id) VALUES (?)", req.clientId);
      return { ...result, registrar: "session", session: usage, rowsWritten: this.rowsWritten - rows };
    });
  }

  /** Connections of clean sessions that ended: each lets its client id go, if it still holds it. Rows written. */
  close(ended: Ended[]): number {
    const rows = this.rowsWritten;
    for (const { clientId, connId } of ended)
      this.sql.exec("DELETE FROM clean WHERE client_id = ? AND conn_id = ?", clientId, connId);
    return this.rowsWritten - rows;
  }

  /** The client id's Session holds nothing any more (expired, closed, dropped). */
  forgotten(clientId: string): void {
    this.sql.exec("DELETE FROM stored WHERE client_id = ?", clientId);
  }

  /** For the HTTP API: a connected clean session here, else what its Session knows. */
  async info(clientId: string): Promise<SessionInfo | null> {
    const clean = this.cleanOf(clientId);
    if (clean === undefined) return (await sessionStub(this.env, clientId).info()).result;
    const live = await gatewayStub(this.env, clean.gateway).clientInfo(clientId);
    return {
      clientId,
      owner: clean.owner,
      online: true,
      gateway: clean.gateway,
      persistent: false,
      subscriptions: live?.subscriptions ?? [],
      queued: live?.inflight ?? 0,
      expiresAt: null,
    };
  }

  /** For the HTTP API: ends the client id's session, connected or stored. */
  drop(clientId: string): Promise<boolean> {
    return this.locks.run(clientId, async () => {
      const clean = this.cleanOf(clientId);
      if (clean === undefined) return (await sessionStub(this.env, clientId).drop()).result;
      await gatewayStub(this.env, clean.gateway).disconnect(clientId, ReasonCode.AdministrativeAction);
      this.sql.exec("DELETE FROM clean WHERE client_id = ?", clientId);
      log("info", "session_dropped", { clientId });
      return true;
    });
  }

  private cleanOf(clientId: string): CleanRow | undefined {
    return this.sql
      .exec<CleanRow>("SELECT owner, gateway, conn_id, namespaced FROM clean WHERE client_id = ?", clientId)
      .toArray()[0];
  }

  /**
   * A claim's one read: the client id's clean row (if it is connected with a clean
   * session) and whether its Session may hold a session (`stored`: a connect must ask it).
   */
  private lookup(clientId: string): { clean: CleanRow | undefined; stored: boolean } {
    // One row always: the clean columns are NULL when the id has no clean row.
    const { stored, owner, gateway, conn_id, namespaced } = this.sql
      .exec<{ owner: string | null; gateway: string; conn_id: string; namespaced: number; stored: number }>(
        `SELECT clean.owner, clean.gateway, clean.conn_id, clean.namespaced,
           EXISTS (SELECT 1 FROM stored WHERE client_id = ?) AS stored
         FROM (SELECT 1) LEFT JOIN clean ON clean.client_id = ?`,
        clientId,
        clientId,
      )
      .one();
    const clean = owner === null ? undefined : { owner, gateway, conn_id, namespaced };
    return { clean, stored: stored === 1 };
  }

  /** Whether a release before registries may have stored sessions this registry does not list. */
  private async legacySessionsMayExist(): Promise<boolean> {
    this.legacyUntil ??= this.readLegacyUntil();
    return Date.now() < (await this.legacyUntil);
  }

  /**
   * Sessions stored by a release before registries live at most MAX_SESSION_EXPIRY
   * after the upgrade, and this registry cannot list them: until then, ids it has not
   * seen go to their Session. Shard 0 knows whether its storage is older than the
   * registries and since when they decide (topic-shard/deployment.ts).
   */
  private async readLegacyUntil(): Promise<number> {
    const row = this.sql
      .exec<{ value: number }>("SELECT value FROM meta WHERE key = 'legacy_until'")
      .toArray()[0];
    if (row !== undefined) return row.value;
    const origin = await shardStub(this.env, 0).origin();
    const until = origin.predatesRegistries
      ? origin.since + Math.max(this.config.maxSessionExpiry, this.config.sessionExpiryDefault) * 1000
      : 0;
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('legacy_until', ?)", until);
    return until;
  }
}
