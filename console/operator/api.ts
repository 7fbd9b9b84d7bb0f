/**
 * The HTTP API as the operator view calls it, with the API token (worker/api.ts).
 * Every answer is data from the broker, and client ids, owners and topic filters
 * in it are whatever clients chose: the view puts them in the page as text only.
 */
import type { StatsAnswer } from "./readings.ts";

/** GET /api/clients/{id}: a session, online or stored (durable-objects/contracts.ts, SessionInfo). */
export interface ClientInfo {
  clientId: string;
  owner: string | null;
  online: boolean;
  gateway: string | null;
  persistent: boolean;
  subscriptions: string[];
  queued: number;
  expiresAt: number | null;
}

export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class OperatorApi {
  private readonly token: string;

  constructor(token: string) {
    this.token = token;
  }

  /** Answers with status 2xx or 404 are the caller's; any other is an ApiError with the API's words. */
  async call(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(path, {
      ...init,
      headers: { authorization: `Bearer ${this.token}` },
    });
    if (res.ok || res.status === 404) return res;
    let text = `${res.status}`;
    try {
      const body = (await res.json()) as { error?: unknown };
      if (typeof body.error === "string") text = `${res.status}: ${body.error}`;
    } catch {
      // not JSON: the status says enough
    }
    throw new ApiError(res.status, `${path.split("?")[0]} answered ${text}`);
  }

  async stats(): Promise<StatsAnswer> {
    const res = await this.call("/api/stats?max_age=1000");
    if (!res.ok) throw new ApiError(res.status, `/api/stats answered ${res.status}`);
    return (await res.json()) as StatsAnswer;
  }

  /** The client id's session, or null when there is none. */
  async client(clientId: string): Promise<ClientInfo | null> {
    const res = await this.call(clientPath(clientId));
    return res.ok ? ((await res.json()) as ClientInfo) : null;
  }

  /** Disconnects the client (5.0: DISCONNECT 0x98) and drops its session; false when there was none. */
  async kick(clientId: string): Promise<boolean> {
    const res = await this.call(clientPath(clientId), { method: "DELETE" });
    return res.ok;
  }
}

/** A client id is one path segment, "/" and "%" included (worker/api.ts decodes it). */
export function clientPath(clientId: string): string {
  return `/api/clients/${encodeURIComponent(clientId)}`;
}
