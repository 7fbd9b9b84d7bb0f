/**
 * `npm run tcp-relay -- <wss://your-worker/mqtt> [host:port]`: listens for MQTT
 * over TCP (127.0.0.1:1884 unless told) and carries each connection to Nimbus over
 * a WebSocket of its own (scripts/relay/tcp-to-websocket.ts). For devices, and for
 * a local Mosquitto's bridge, that cannot speak WebSocket: README, "Devices that
 * speak only TCP".
 */
import { startRelay } from "./relay/tcp-to-websocket.ts";

const [url, listen = "127.0.0.1:1884"] = process.argv.slice(2);
const at = listen.lastIndexOf(":");
const host = listen.slice(0, at);
const port = Number(listen.slice(at + 1));
if (!url || !/^wss?:\/\//.test(url) || at < 0 || !Number.isInteger(port)) {
  console.error("usage: npm run tcp-relay -- wss://<your-worker>/mqtt [host:port, default 127.0.0.1:1884]");
  process.exit(2);
}
await startRelay({
  host,
  port,
  url,
  onClose: (peer, err) => console.log(`${peer} closed${err ? `: ${err.message}` : ""}`),
});
console.log(`relaying MQTT over TCP at ${host}:${port} to ${url}`);
