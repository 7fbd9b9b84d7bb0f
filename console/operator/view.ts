/**
 * The operator view: with the API token, live charts of messages in and out a
 * second and of connections (from /api/stats every POLL_MS), a running cost meter
 * from the same answers, and the client list: search by client id prefix, a
 * client's subscriptions, kick. Everything a client chose (client ids, owners,
 * topic filters) goes into the page through textContent only.
 */
import { ApiError, type ClientInfo, OperatorApi } from "./api.ts";
import { LineChart } from "./chart.ts";
import { type ClientPage, type ListedClient, listClients } from "./client-list.ts";
import { CostMeter, type Dollars } from "./cost.ts";
import { type Reading, ratesBetween, readingOf } from "./readings.ts";

/** Every few seconds: each poll is one billed request to every gateway and shard. */
export const POLL_MS = 3000;
/** Rows the client list holds across its pages; past it, a narrower prefix. */
export const MAX_ROWS = 1000;
/** Subscriptions shown for one client. */
export const MAX_SUBSCRIPTIONS_SHOWN = 1000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function text(tag: string, content: string, className?: string): HTMLElement {
  const el = document.createElement(tag);
  el.textContent = content;
  if (className) el.className = className;
  return el;
}

export function dollars(n: number): string {
  if (n === 0) return "$0";
  if (n < 0.01) return `$${n.toFixed(6)}`;
  if (n < 1) return `$${n.toFixed(4)}`;
  return `$${n.toFixed(2)}`;
}

const perSecond = (n: number) => `${n < 10 ? n.toFixed(1) : Math.round(n)}/s`;
const count = (n: number) => String(Math.round(n));

export function startOperatorView(): void {
  let api: OperatorApi | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let generation = 0;
  const state = $("operator-state");

  $("operator-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = ($("api-token") as HTMLInputElement).value;
    api = new OperatorApi(token);
    // A new token starts over: new charts, a new meter.
    generation++;
    if (timer !== undefined) clearTimeout(timer);
    watch(api, generation);
  });

  function watch(client: OperatorApi, mine: number): void {
    const charts = {
      in: new LineChart($("chart-in"), $("in-value"), perSecond),
      out: new LineChart($("chart-out"), $("out-value"), perSecond),
      connections: new LineChart($("chart-connections"), $("connections-value"), count),
    };
    const meter = new CostMeter();
    let previous: Reading | undefined;
    const poll = async () => {
      if (mine !== generation) return;
      // A hidden tab does not poll: no requests billed for charts nobody sees.
      if (document.visibilityState !== "hidden") {
        try {
          const reading = readingOf(await client.stats(), performance.now());
          if (mine !== generation) return;
          if (previous !== undefined) {
            const rates = ratesBetween(previous, reading);
            charts.in.push(rates.inPerSecond);
            charts.out.push(rates.outPerSecond);
          }
          charts.connections.push(reading.connections);
          meter.add(reading);
          showCost(meter);
          previous = reading;
          state.textContent = `watching: ${reading.objects} objects answer each poll, every ${POLL_MS / 1000} s`;
        } catch (err) {
          state.textContent = String(err instanceof Error ? err.message : err);
          // A wrong token will not get better by asking again.
          if (err instanceof ApiError && (err.status === 401 || err.status === 503)) return;
        }
      }
      timer = setTimeout(poll, POLL_MS);
    };
    void poll();
  }

  function showCost(meter: CostMeter): void {
    const r = meter.report();
    const box = $("cost");
    $("cost-total").textContent = dollars(r.sinceOpen.total);
    $("cost-seconds").textContent = String(Math.round(r.seconds));
    $("cost-month").textContent = r.perMonth === null ? "–" : `${dollars(r.perMonth)} a month`;
    box.dataset.dollars = String(r.sinceOpen.total);
    box.dataset.wsMessagesIn = String(r.usage.wsMessagesIn);
    const rows: Array<[string, string, keyof Dollars]> = [
      [
        "Durable Object requests",
        `${r.usage.requests} (${r.ownRequests} by this page's polling)`,
        "requests",
      ],
      ["WebSocket messages in", String(r.usage.wsMessagesIn), "wsMessages"],
      ["SQLite rows written", String(r.usage.rowsWritten), "rowsWritten"],
      ["Log lines", String(r.usage.logLines), "logLines"],
    ];
    ($("cost-breakdown").querySelector("tbody") as HTMLElement).replaceChildren(
      ...rows.map(([what, n, key]) => {
        const tr = document.createElement("tr");
        tr.append(text("td", what), text("td", n), text("td", dollars(r.sinceOpen[key])));
        return tr;
      }),
    );
  }

  // The client list.
  let prefix = "";
  let next: string | null = null;
  let rows = 0;
  const body = $("clients").querySelector("tbody") as HTMLTableSectionElement;
  const note = $("client-note");
  const more = $("clients-more") as HTMLButtonElement;

  $("client-search").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (api === undefined) {
      note.textContent = "Enter the API token and press Watch first.";
      return;
    }
    prefix = ($("client-prefix") as HTMLInputElement).value;
    body.replaceChildren();
    rows = 0;
    $("client-detail").hidden = true;
    await loadPage(api, null);
  });

  more.addEventListener("click", () => {
    if (api !== undefined && next !== null) void loadPage(api, next);
  });

  async function loadPage(client: OperatorApi, cursor: string | null): Promise<void> {
    let page: ClientPage;
    try {
      page = await listClients(client, prefix, cursor);
    } catch (err) {
      note.textContent = String(err instanceof Error ? err.message : err);
      return;
    }
    for (const c of page.clients) {
      if (rows >= MAX_ROWS) break;
      body.append(clientRow(client, c));
      rows++;
    }
    next = rows < MAX_ROWS ? page.next : null;
    more.hidden = next === null;
    if (page.source === "exact")
      note.textContent =
        page.clients.length === 0
          ? "This broker cannot list clients yet: type a whole client id to find its session."
          : "This broker cannot list clients yet: the session with exactly this client id.";
    else if (rows >= MAX_ROWS) note.textContent = `The first ${MAX_ROWS} clients: narrow the prefix.`;
    else note.textContent = rows === 0 ? "No client connected with this prefix." : "";
  }

  function clientRow(client: OperatorApi, c: ListedClient): HTMLTableRowElement {
    const tr = document.createElement("tr");
    tr.dataset.clientId = c.clientId;
    const idCell = document.createElement("td");
    const open = text("button", c.clientId, "link");
    open.title = "its session and subscriptions";
    open.addEventListener("click", () => void showClient(client, c.clientId));
    idCell.append(open);
    const stateCell = text("td", c.online ? "online" : "offline", "state");
    const kick = text("button", "Kick", "kick") as HTMLButtonElement;
    kick.title = "Disconnect it (MQTT 5.0: DISCONNECT 0x98) and drop its session";
    kick.addEventListener("click", async () => {
      kick.disabled = true;
      try {
        const dropped = await client.kick(c.clientId);
        stateCell.textContent = dropped ? "kicked" : "gone already";
      } catch (err) {
        kick.disabled = false;
        note.textContent = String(err instanceof Error ? err.message : err);
      }
    });
    const kickCell = document.createElement("td");
    kickCell.append(kick);
    tr.append(
      idCell,
      text("td", c.owner ?? ""),
      stateCell,
      text("td", c.gateway ?? ""),
      text("td", c.persistent ? "persistent" : "clean"),
      kickCell,
    );
    return tr;
  }

  async function showClient(client: OperatorApi, clientId: string): Promise<void> {
    const box = $("client-detail");
    let info: ClientInfo | null;
    try {
      info = await client.client(clientId);
    } catch (err) {
      note.textContent = String(err instanceof Error ? err.message : err);
      return;
    }
    box.hidden = false;
    $("client-detail-id").textContent = clientId;
    const facts = $("client-facts");
    const subs = $("client-subscriptions");
    if (info === null) {
      facts.replaceChildren(text("dt", "session"), text("dd", "none (gone)"));
      subs.replaceChildren();
      return;
    }
    const pairs: Array<[string, string]> = [
      ["owner", info.owner ?? ""],
      ["state", info.online ? `online at ${info.gateway ?? "?"}` : "offline"],
      ["session", info.persistent ? "persistent" : "clean"],
      [info.online ? "in flight" : "queued", String(info.queued)],
      ["expires", info.expiresAt === null ? "—" : new Date(info.expiresAt).toLocaleString()],
      ["subscriptions", String(info.subscriptions.length)],
    ];
    facts.replaceChildren(...pairs.flatMap(([k, v]) => [text("dt", k), text("dd", v)]));
    const shown = info.subscriptions.slice(0, MAX_SUBSCRIPTIONS_SHOWN).map((f) => text("li", f, "topic"));
    if (info.subscriptions.length > MAX_SUBSCRIPTIONS_SHOWN)
      shown.push(text("li", `and ${info.subscriptions.length - MAX_SUBSCRIPTIONS_SHOWN} more`, "meta"));
    subs.replaceChildren(...shown);
  }
}
