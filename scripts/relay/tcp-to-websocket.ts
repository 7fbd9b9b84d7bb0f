/**
 * A relay for devices and brokers that speak MQTT only over TCP (Mosquitto's
 * bridge among them): each TCP connection accepted here is carried, byte for byte,
 * over a WebSocket of its own to Nimbus's /mqtt (subprotocol "mqtt"). It reads no
 * MQTT: the CONNECT, its credentials and every packet pass through as they are, in
 * binary frames that need not line up with packets (MQTT-6.0.0-2: the gateway's
 * decoder joins them). Both directions are piped with backpressure, so a side that
 * stops reading stops the other: no more than a stream's high-water mark waits
 * here per direction, and nothing is buffered before the WebSocket opens beyond it.
 */
import { createServer, type Server, type Socket } from "node:net";
import { pipeline } from "node:stream";
import WebSocket, { createWebSocketStream } from "ws";

export interface RelayOptions {
  /** Where to listen: loopback unless the devices are on another machine. */
  host: string;
  port: number;
  /** Nimbus's endpoint, wss://<your-worker>/mqtt. */
  url: string;
  /** How long a WebSocket may take to open. */
  handshakeTimeoutMs?: number;
  /** The largest WebSocket message taken from Nimbus (it sends a packet or a few per message). */
  maxMessageBytes?: number;
  /** Connections carried at once; more are refused (closed at once). */
  maxConnections?: number;
  /** Told of each connection's end and why (the CLI logs it). */
  onClose?: (peer: string, error: Error | undefined) => void;
}

export const DEFAULTS = {
  handshakeTimeoutMs: 10_000,
  // Cloudflare's largest WebSocket message (DESIGN.md, platform limits).
  maxMessageBytes: 32 * 1024 * 1024,
  maxConnections: 1000,
} as const;

export function startRelay(options: RelayOptions): Promise<Server> {
  const server = createServer((socket) => carry(socket, options));
  server.maxConnections = options.maxConnections ?? DEFAULTS.maxConnections;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

function carry(socket: Socket, options: RelayOptions): void {
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  socket.setNoDelay(true);
  const ws = new WebSocket(options.url, "mqtt", {
    handshakeTimeout: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
    maxPayload: options.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
    perMessageDeflate: false,
  });
  const stream = createWebSocketStream(ws);
  let error: Error | undefined;
  // TCP to WebSocket and back; either end closing or failing ends both.
  pipeline(socket, stream, (err) => {
    error ??= err ?? undefined;
    socket.destroy();
  });
  pipeline(stream, socket, (err) => {
    error ??= err ?? undefined;
    stream.destroy();
  });
  socket.once("close", () => options.onClose?.(peer, error));
}
