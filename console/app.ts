/**
 * The Nimbus web console: MQTT.js in the browser over the same /mqtt endpoint
 * every app uses. Connect, subscribe and watch, publish with 5.0 properties,
 * browse retained messages, and see the connection's state and errors in words.
 * With the API token, the operator view (operator/): live charts, a cost meter,
 * the client list.
 */
import mqtt, { type IClientPublishOptions, type MqttClient } from "mqtt";
import { topicMatches } from "../mqtt/topics/validate.ts";
import { startOperatorView } from "./operator/view.ts";
import { describeReason } from "./reasons.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const statusEl = $("status");
const errorEl = $("error");
let client: MqttClient | undefined;

function setStatus(state: "disconnected" | "connecting" | "connected", text: string = state): void {
  statusEl.className = `status ${state}`;
  statusEl.textContent = text;
  ($("connect") as HTMLButtonElement).disabled = state !== "disconnected";
  ($("disconnect") as HTMLButtonElement).disabled = state === "disconnected";
}

function showError(text: string): void {
  errorEl.textContent = text;
}

const defaultUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/mqtt`;
($("url") as HTMLInputElement).value = defaultUrl;
($("clientId") as HTMLInputElement).value = `console-${Math.random().toString(16).slice(2, 8)}`;

$("connect-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target as HTMLFormElement);
  const protocolVersion = Number(f.get("protocol")) as 4 | 5;
  showError("");
  setStatus("connecting");
  client = mqtt.connect(String(f.get("url")), {
    clientId: String(f.get("clientId")),
    username: String(f.get("username") || "") || undefined,
    password: String(f.get("password") || "") || undefined,
    protocolVersion,
    clean: f.get("clean") === "on",
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  client.on("connect", (connack) => {
    setStatus("connected", `connected (MQTT ${protocolVersion === 5 ? "5.0" : "3.1.1"})`);
    const details: Array<[string, string]> = [
      ["session present", String(connack.sessionPresent)],
      ...Object.entries(connack.properties ?? {}).map(([k, v]): [string, string] => [k, String(v)]),
    ];
    $("details").innerHTML = "";
    for (const [k, v] of details) {
      $("details").append(Object.assign(document.createElement("dt"), { textContent: k }));
      $("details").append(Object.assign(document.createElement("dd"), { textContent: v }));
    }
  });
  client.on("message", onMessage);
  client.on("error", (err) => {
    const code = (err as { code?: number }).code;
    showError(code === undefined ? err.message : describeReason(code, err.message));
  });
  client.on("disconnect", (packet) => {
    showError(`The broker disconnected: ${describeReason(packet.reasonCode ?? 0, "")}`);
  });
  client.on("close", () => setStatus("disconnected"));
});

$("disconnect").addEventListener("click", () => client?.end());

/** One list of messages per subscription. */
const subscriptions = new Map<string, HTMLUListElement>();

$("subscribe-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!client?.connected) return showError("Connect first.");
  const form = e.target as HTMLFormElement;
  const f = new FormData(form);
  const filter = String(f.get("filter"));
  const qos = Number(f.get("qos")) as 0 | 1 | 2;
  try {
    const granted = await client.subscribeAsync(filter, { qos });
    const code = granted[0]?.qos ?? 0x80;
    if (code >= 0x80) return showError(`Subscription to ${filter} refused: ${describeReason(code, "")}`);
    if (!subscriptions.has(filter)) addSubscription(filter, code);
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet;
    showError(
      `Subscription to ${filter} refused: ${describeReason(packet?.granted?.[0] ?? 0x80, String(err))}`,
    );
  }
});

function addSubscription(filter: string, qos: number): void {
  const box = document.createElement("div");
  box.className = "subscription";
  box.dataset.filter = filter;
  const title = document.createElement("h3");
  title.textContent = `${filter} (QoS ${qos})`;
  const remove = Object.assign(document.createElement("button"), { textContent: "Unsubscribe" });
  remove.addEventListener("click", async () => {
    await client?.unsubscribeAsync(filter);
    subscriptions.delete(filter);
    box.remove();
  });
  title.append(remove);
  const list = document.createElement("ul");
  list.className = "messages";
  box.append(title, list);
  $("subscriptions").prepend(box);
  subscriptions.set(filter, list);
}

function messageItem(topic: string, payload: Uint8Array, qos: number, retain: boolean): HTMLLIElement {
  const li = document.createElement("li");
  const text = new TextDecoder().decode(payload);
  li.innerHTML = "";
  li.append(
    Object.assign(document.createElement("span"), { className: "topic", textContent: topic }),
    document.createTextNode(" "),
    Object.assign(document.createElement("span"), { className: "payload", textContent: text }),
    Object.assign(document.createElement("span"), {
      className: "meta",
      textContent: ` QoS ${qos}${retain ? " retained" : ""} ${new Date().toLocaleTimeString()}`,
    }),
  );
  return li;
}

function onMessage(topic: string, payload: Uint8Array, packet: { qos: number; retain: boolean }): void {
  for (const [filter, list] of subscriptions) {
    if (topicMatches(filter, topic)) list.prepend(messageItem(topic, payload, packet.qos, packet.retain));
  }
}

$("publish-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!client?.connected) return showError("Connect first.");
  const f = new FormData(e.target as HTMLFormElement);
  const options: IClientPublishOptions = {
    qos: Number(f.get("qos")) as 0 | 1 | 2,
    retain: f.get("retain") === "on",
  };
  const properties: NonNullable<IClientPublishOptions["properties"]> = {};
  const str = (k: string) => String(f.get(k) ?? "").trim();
  if (str("contentType")) properties.contentType = str("contentType");
  if (str("responseTopic")) properties.responseTopic = str("responseTopic");
  if (str("correlationData"))
    properties.correlationData = new TextEncoder().encode(str("correlationData")) as never;
  if (str("messageExpiryInterval")) properties.messageExpiryInterval = Number(str("messageExpiryInterval"));
  if (str("userProperties")) {
    properties.userProperties = Object.fromEntries(
      str("userProperties")
        .split("\n")
        .map((line) => line.split("=").map((s) => s.trim()))
        .filter((kv) => kv[0]),
    );
  }
  if (Object.keys(properties).length > 0) options.properties = properties;
  try {
    await client.publishAsync(str("topic"), String(f.get("payload") ?? ""), options);
    showError("");
  } catch (err) {
    const code = (err as { code?: number }).code;
    showError(`Publish refused: ${code === undefined ? String(err) : describeReason(code, String(err))}`);
  }
});

/** Retained messages: a short-lived subscription whose RETAIN-flagged messages are listed. */
$("retained-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!client) return showError("Connect first.");
  const filter = String(new FormData(e.target as HTMLFormElement).get("filter"));
  const list = $("retained");
  list.innerHTML = "";
  const browser = mqtt.connect(($("url") as HTMLInputElement).value, {
    clientId: `console-browse-${Math.random().toString(16).slice(2, 8)}`,
    username: client.options.username,
    password: client.options.password,
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  browser.on("message", (topic, payload, packet) => {
    if (packet.retain) list.append(messageItem(topic, payload, packet.qos, true));
  });
  browser.on("connect", async () => {
    await browser.subscribeAsync(filter, { qos: 0 });
    setTimeout(() => browser.end(), 1500);
  });
  browser.on("error", (err) => showError(`Browsing retained messages failed: ${err.message}`));
});

/** Rules and bridges with their counters, from the HTTP API (which needs its token). */
$("integrations-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = ($("api-token") as HTMLInputElement).value;
  const get = async (path: string) => {
    const res = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`${path} answered ${res.status}`);
    return res.json();
  };
  try {
    const stats = (await get("/api/stats")) as { rules: Record<string, Record<string, number>> };
    const bridges = (await get("/api/bridges")) as Array<Record<string, string | number | null>>;
    fillTable(
      "rules",
      Object.entries(stats.rules).map(([name, c]) => [
        name,
        c.matched,
        c.sent,
        c.failed,
        c.dead,
        c.dropped,
        c.pending,
      ]),
    );
    fillTable(
      "bridges",
      bridges.map((b) => [
        b.name,
        b.remote,
        b.state,
        b.messagesIn,
        b.messagesOut,
        b.dropped,
        b.queued,
        b.connects,
        b.lastError ?? "",
      ]),
    );
    showError("");
  } catch (err) {
    showError(`Loading rules and bridges failed: ${String(err)}`);
  }
});

function fillTable(id: string, rows: Array<Array<string | number | null | undefined>>): void {
  const body = $(id).querySelector("tbody") as HTMLTableSectionElement;
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const c of cells) {
        const td = document.createElement("td");
        td.textContent = String(c ?? "");
        tr.append(td);
      }
      return tr;
    }),
  );
}

startOperatorView();
