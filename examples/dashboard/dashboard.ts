/**
 * A live dashboard: subscribes to telemetry/+/temperature over MQTT (MQTT.js in
 * the browser, the same /mqtt endpoint) and charts the last minute per device.
 */
import mqtt from "mqtt";

const WINDOW = 120;
const series = new Map<string, { values: number[]; canvas: HTMLCanvasElement; label: HTMLElement }>();
const status = document.getElementById("status") as HTMLElement;
const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/mqtt`;
const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 2000 });

client.on("connect", () => {
  status.textContent = `connected to ${url}`;
  void client.subscribeAsync("telemetry/+/temperature", { qos: 0 });
});
client.on("close", () => {
  status.textContent = "disconnected; retrying…";
});
client.on("message", (topic, payload) => {
  const device = topic.split("/")[1] as string;
  const value = Number(new TextDecoder().decode(payload));
  if (!Number.isFinite(value)) return;
  const s = series.get(device) ?? addDevice(device);
  s.values.push(value);
  if (s.values.length > WINDOW) s.values.shift();
  s.label.textContent = `${value.toFixed(1)} °C`;
  draw(s.canvas, s.values);
});

function addDevice(device: string) {
  const card = document.createElement("div");
  card.className = "card";
  const title = document.createElement("h2");
  const label = document.createElement("span");
  title.append(document.createTextNode(device), label);
  const canvas = document.createElement("canvas");
  canvas.width = 600;
  canvas.height = 240;
  card.append(title, canvas);
  (document.getElementById("charts") as HTMLElement).append(card);
  const s = { values: [] as number[], canvas, label };
  series.set(device, s);
  return s;
}

function draw(canvas: HTMLCanvasElement, values: number[]): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const min = Math.min(...values) - 0.5;
  const max = Math.max(...values) + 0.5;
  ctx.strokeStyle = "#4f8cff";
  ctx.lineWidth = 3;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (WINDOW - 1)) * width;
    const y = height - ((v - min) / (max - min)) * height;
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}
