/**
 * Logins from the upgrade request against a real broker with anonymous access off:
 * a session cookie and a query token from Node, a session cookie and an Access
 * token (CF_Authorization cookie) from Chromium on a page the broker serves, and
 * the same cookies sent by a page of another origin (Cross-Site WebSocket
 * Hijacking), which log no one in. Client certificates cannot be presented to
 * `wrangler dev`: test/runtime/upgrade-logins.test.ts sets request.cf.
 */
import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ConnackPacket, ConnectReturnCode, encode, ReasonCode } from "../../mqtt/index.ts";
import { freePort, type RunningBroker, startBroker } from "../support/broker.ts";
import { launchChromium } from "../support/browser.ts";
import { RawClient, unique } from "../support/clients.ts";
import { connectPacket } from "../support/packets.ts";

const SESSION_SECRET = "e2e-session-secret-of-32-bytes-at-least";
const JWT_SECRET = "e2e-upgrade-jwt-secret";
const AUD = "9607121bab7ceeed691bc06782b5030c7e054a27e3f98467b79f97a5f3708112";
const TEAM = "acme.cloudflareaccess.com";
const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64url");
const seconds = () => Math.floor(Date.now() / 1000);

/** A session cookie value, made as the README tells an app's backend to. */
function sessionCookie(name: string, exp = seconds() + 300): string {
  const body = `v1.${Buffer.from(name).toString("base64url")}.${exp}`;
  return `${body}.${createHmac("sha256", SESSION_SECRET).update(body).digest("base64url")}`;
}

function hs256(claims: Record<string, unknown>): string {
  const data = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ exp: seconds() + 300, ...claims })}`;
  return `${data}.${createHmac("sha256", JWT_SECRET).update(data).digest("base64url")}`;
}

const accessKey = generateKeyPairSync("rsa", { modulusLength: 2048 });
const accessJwk = {
  ...(accessKey.publicKey.export({ format: "jwk" }) as JsonWebKey),
  kid: "e2e",
  alg: "RS256",
};

function accessToken(email: string, key: KeyObject = accessKey.privateKey): string {
  const data = `${b64({ alg: "RS256", kid: "e2e", typ: "JWT" })}.${b64({
    aud: [AUD],
    email,
    exp: seconds() + 300,
    iat: seconds(),
    iss: `https://${TEAM}`,
    type: "app",
  })}`;
  return `${data}.${sign("sha256", Buffer.from(data), key).toString("base64url")}`;
}

describe("logins from the upgrade request", () => {
  let broker: RunningBroker;
  let browser: Browser;
  let elsewhere: Server;
  let elsewhereUrl: string;
  const raws: RawClient[] = [];

  beforeAll(async () => {
    broker = await startBroker({
      vars: {
        ALLOW_ANONYMOUS: "false",
        UPGRADE_SESSION_SECRET: SESSION_SECRET,
        UPGRADE_QUERY_TOKEN: "true",
        JWT_SECRET,
        ACCESS_TEAM_DOMAIN: "acme",
        ACCESS_AUD: AUD,
        ACCESS_JWKS: JSON.stringify({ keys: [accessJwk] }),
        ACL: JSON.stringify([{ user: "*", publish: ["users/%u/#"], subscribe: ["users/%u/#"] }]),
      },
    });
    browser = await launchChromium();
    // A page of another origin on the same host: the browser sends the broker's
    // host's cookies with its WebSocket (cookies know no ports), and an Origin of
    // its own.
    const port = await freePort();
    elsewhere = createServer((_req, res) => res.end("<!doctype html><title>elsewhere</title>"));
    await new Promise<void>((resolve) => elsewhere.listen(port, "127.0.0.1", resolve));
    elsewhereUrl = `http://127.0.0.1:${port}/`;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    elsewhere?.close();
    await broker?.stop();
  });

  afterEach(() => {
    for (const r of raws.splice(0)) r.terminate();
  });

  async function raw(version: 4 | 5, headers: Record<string, string> = {}, query = ""): Promise<RawClient> {
    const r = await RawClient.open(`${broker.url}${query}`, version, "mqtt", headers);
    raws.push(r);
    return r;
  }

  /**
   * CONNECT (3.1.1, no credentials) from a page at `pageUrl` in Chromium with `cookies`
   * set for the broker's host; the CONNACK's return code, or the close code.
   */
  async function fromBrowser(pageUrl: string, cookies: Record<string, string>): Promise<number | string> {
    const context = await browser.newContext();
    try {
      const host = new URL(broker.httpUrl);
      await context.addCookies(
        Object.entries(cookies).map(([name, value]) => ({ name, value, domain: host.hostname, path: "/" })),
      );
      const page = await context.newPage();
      await page.goto(pageUrl);
      const bytes = Array.from(encode(connectPacket(unique("browser"), 4), 4));
      return await page.evaluate(
        ({ url, bytes }) =>
          new Promise<number | string>((resolve) => {
            const ws = new WebSocket(url, "mqtt");
            // A frame is read asynchronously (a Blob): the close that may follow it waits its turn.
            let reading = Promise.resolve();
            ws.addEventListener("open", () => ws.send(new Uint8Array(bytes)));
            ws.addEventListener("message", (e) => {
              reading = reading.then(async () => {
                const data = e.data as Blob | ArrayBuffer;
                const frame = new Uint8Array(data instanceof Blob ? await data.arrayBuffer() : data);
                // CONNACK (3.1.1): 0x20 0x02 flags code.
                resolve(frame[3] as number);
                ws.close();
              });
            });
            ws.addEventListener("close", (e) => void reading.then(() => resolve(`closed ${e.code}`)));
          }),
        { url: `${broker.url}`, bytes },
      );
    } finally {
      await context.close();
    }
  }

  it("a session cookie logs a Node client in as its name; a user name may repeat it, not rename it", async () => {
    const cookie = { Cookie: `nimbus_session=${sessionCookie("carol")}` };
    const plain = await raw(5, cookie);
    expect(await plain.connect(unique("carol"))).toMatchObject({ reasonCode: 0 });
    const same = await raw(4, cookie);
    same.sendConnect(unique("carol"), { username: "carol" });
    expect((await same.next("connack")).reasonCode).toBe(ConnectReturnCode.Accepted);
    const renamed = await raw(5, cookie);
    renamed.sendConnect(unique("carol"), { username: "admin" });
    expect((await renamed.next("connack")).reasonCode).toBe(ReasonCode.BadUserNameOrPassword);
    // Its ACL is its name's: users/carol/#, not users/admin/#.
    const grants = await plain.subscribe("users/carol/x", 0);
    expect(grants.reasonCodes).toEqual([0]);
    const denied = await plain.subscribe("users/admin/x", 0, 2);
    expect(denied.reasonCodes).toEqual([ReasonCode.NotAuthorized]);
  });

  it("without a login, with an expired cookie or a forged one, CONNECT without credentials is not authorized", async () => {
    const expired = `nimbus_session=${sessionCookie("carol", seconds() - 60)}`;
    const forged = `nimbus_session=${sessionCookie("carol").replace("v1.Y2Fyb2w", `v1.${Buffer.from("admin").toString("base64url")}`)}`;
    const cases: Array<Record<string, string>> = [{}, { Cookie: expired }, { Cookie: forged }];
    for (const headers of cases) {
      const r = await raw(5, headers);
      expect((await r.connect(unique("nobody"))) as ConnackPacket).toMatchObject({
        reasonCode: ReasonCode.NotAuthorized,
      });
    }
  });

  it("a forged x-nimbus-upgrade-identity header from the client logs no one in", async () => {
    const r = await raw(5, {
      "x-nimbus-upgrade-identity": JSON.stringify({ identity: { username: "admin", via: "session" } }),
    });
    expect(await r.connect(unique("forger"))).toMatchObject({ reasonCode: ReasonCode.NotAuthorized });
  });

  it("a token in the query logs in with its subject and keeps its client_id; a bad one is answered 401", async () => {
    const free = await raw(4, {}, `?token=${hs256({ sub: "dave" })}`);
    expect((await free.connect(unique("dave"))).reasonCode).toBe(0);
    const bound = hs256({ sub: "dave", client_id: "dave-phone" });
    const other = await raw(5, {}, `?token=${bound}`);
    expect((await other.connect(unique("not-the-phone"))).reasonCode).toBe(ReasonCode.NotAuthorized);
    const phone = await raw(5, {}, `?token=${bound}`);
    expect((await phone.connect("dave-phone")).reasonCode).toBe(0);
    const bad = hs256({ sub: "dave" }).replace(/.$/, (c) => (c === "A" ? "Q" : "A"));
    await expect(raw(4, {}, `?token=${bad}`)).rejects.toThrow(/401/);
  });

  it("Chromium on the broker's page logs in with the session cookie, and with an Access token", async () => {
    expect(await fromBrowser(`${broker.httpUrl}/`, { nimbus_session: sessionCookie("carol") })).toBe(0);
    expect(
      await fromBrowser(`${broker.httpUrl}/`, { CF_Authorization: accessToken("alice@acme.example") }),
    ).toBe(0);
    // An Access token signed by someone else's key: no login.
    const forged = accessToken(
      "alice@acme.example",
      generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey,
    );
    expect(await fromBrowser(`${broker.httpUrl}/`, { CF_Authorization: forged })).toBe(
      ConnectReturnCode.NotAuthorized,
    );
  });

  it("a page of another origin gets no login from the same cookies (Cross-Site WebSocket Hijacking)", async () => {
    const cookies = {
      nimbus_session: sessionCookie("carol"),
      CF_Authorization: accessToken("alice@acme.example"),
    };
    expect(await fromBrowser(elsewhereUrl, cookies)).toBe(ConnectReturnCode.NotAuthorized);
  });
});
