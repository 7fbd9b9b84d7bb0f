/**
 * One WebSocket frame per MQTT packet for MQTT.js 5 in Node.
 *
 * MQTT.js writes a packet piece by piece (mqtt-packet: fixed header, lengths, topic,
 * payload…) into the stream that `ws.createWebSocketStream` makes, and in Node that
 * stream sends every write as a frame of its own: `npm run bench -- --clients` counts
 * 6 frames for a QoS 1 PUBLISH (7 in MQTT 5.0), 9–10 for a CONNECT, 3 for a PUBACK. On
 * Cloudflare each frame is an incoming WebSocket message, billed (20 to a request) and
 * handled by the gateway as an event of its own.
 *
 * mqtt-packet corks the stream while it writes one packet and uncorks it on the next
 * tick, so a stream that can take several writes at once (`_writev`) gets the pieces of
 * a packet, or of several packets written in the same tick, together: this one sends
 * them as one frame (MQTT-6.0.0-2 lets a frame hold several packets or part of one).
 *
 *   import { connectWholePackets } from "./clients/whole-packets.ts";
 *   const client = connectWholePackets("wss://broker.example/mqtt", { clientId: "a", username, password });
 *
 * It returns MQTT.js's own client (reconnects, keep-alive and the rest unchanged). The
 * URL gives only the address: user name and password go in the options.
 *
 * MQTT.js 5.16's `forceNativeWebSocket: true` also sends whole packets in Node (its
 * browser stream has a `_writev`), but only if it is given to the first `mqtt.connect`
 * of the process: the table of transports is built once and kept.
 */
import type { Duplex } from "node:stream";
import { type IClientOptions, MqttClient } from "mqtt";
import WebSocket, { type ClientOptions, createWebSocketStream } from "ws";

/** MQTT.js connected to `url` (ws:// or wss://) through a stream that sends each packet as one frame. */
export function connectWholePackets(
  url: string,
  options: IClientOptions = {},
  wsOptions: ClientOptions = {},
): MqttClient {
  const { protocol } = new URL(url);
  if (protocol !== "ws:" && protocol !== "wss:") throw new Error(`not a WebSocket URL: ${url}`);
  // MQTT 3.1 clients ask for the older subprotocol name, as MQTT.js does.
  const subprotocol = options.protocolId === "MQIsdp" && options.protocolVersion === 3 ? "mqttv3.1" : "mqtt";
  return new MqttClient(() => wholePacketStream(url, subprotocol, wsOptions), options);
}

/** A duplex over a `ws` WebSocket that sends everything written in one go as one frame. */
export function wholePacketStream(url: string, subprotocol: string, wsOptions: ClientOptions = {}): Duplex {
  const socket = new WebSocket(url, [subprotocol], { perMessageDeflate: false, ...wsOptions });
  const stream = createWebSocketStream(socket);
  const send = (data: Buffer, callback: (error?: Error | null) => void) => {
    if (socket.readyState === WebSocket.CONNECTING) socket.once("open", () => socket.send(data, callback));
    else socket.send(data, callback);
  };
  stream._writev = (chunks, callback) =>
    send(Buffer.concat(chunks.map((c) => Buffer.from(c.chunk))), callback);
  // As MQTT.js's own builder: the stream ends with its socket, so that the client sees the close.
  socket.on("close", () => stream.destroy());
  return stream;
}
