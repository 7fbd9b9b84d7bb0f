/** Aedes over WebSocket on 127.0.0.1:<port>, for the load benchmark. */
import { createServer } from "node:http";
import { Aedes } from "aedes";
import { createWebSocketStream, WebSocketServer } from "ws";

const port = Number(process.argv[2]);
const broker = await Aedes.createBroker();
const server = createServer();
const wss = new WebSocketServer({ server, path: "/mqtt", perMessageDeflate: false });
wss.on("connection", (ws) => broker.handle(createWebSocketStream(ws) as never));
server.listen(port, "127.0.0.1", () => console.log(`aedes ready on ${port}`));
