/**
 * The web console in a real browser: Debian's chromium driven by playwright-core
 * (no browser download). One page subscribes, another publishes, the message
 * shows up; the operator view charts traffic, prices it, finds, shows and kicks a
 * client, and shows hostile client ids as text. A screenshot is saved under
 * test-results/ when a test fails, and of the operator view (docs/operator-view.png
 * was taken as this one is, after a minute of traffic from 16 clients).
 */
import { mkdirSync } from "node:fs";
import type { MqttClient } from "mqtt";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { connect, unique } from "../support/clients.ts";

const http = inject("brokerHttpUrl");
const url = inject("brokerUrl");
const apiToken = inject("brokerVars").API_TOKEN as string;
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

async function openConsole(clientId: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${http}/`);
  await page.fill("#clientId", clientId);
  await page.click("#connect");
  await page.waitForSelector("#status.connected", { timeout: 10_000 });
  return page;
}

async function withScreenshot<T>(name: string, pages: Page[], run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    mkdirSync("test-results", { recursive: true });
    await Promise.all(
      pages.map((p, i) => p.screenshot({ path: `test-results/${name}-${i}.png`, fullPage: true })),
    );
    throw err;
  }
}

describe("web console", () => {
  it("one page subscribes, another publishes, the message shows up", async () => {
    const topic = unique("console/demo");
    const a = await openConsole(unique("console-a"));
    const b = await openConsole(unique("console-b"));
    await withScreenshot("console", [a, b], async () => {
      await a.fill('#subscribe-form input[name="filter"]', `${topic}/#`);
      await a.click("#subscribe");
      await a.waitForSelector(`.subscription[data-filter="${topic}/#"]`);
      await b.fill('#publish-form input[name="topic"]', `${topic}/kitchen`);
      await b.fill('#publish-form textarea[name="payload"]', "hello from the browser");
      await b.click("#publish");
      const item = a.locator(`.subscription[data-filter="${topic}/#"] .payload`, {
        hasText: "hello from the browser",
      });
      await item.waitFor({ timeout: 10_000 });
      expect(await item.count()).toBe(1);
    });
  });

  it("says in plain words why a subscription was refused", async () => {
    const page = await openConsole(unique("console-c"));
    await withScreenshot("console-refused", [page], async () => {
      // a filter the broker refuses: more levels than MAX_TOPIC_LEVELS allows
      await page.fill(
        '#subscribe-form input[name="filter"]',
        Array.from({ length: 40 }, (_, i) => `l${i}`).join("/"),
      );
      await page.click("#subscribe");
      await page.waitForSelector("#error:has-text('refused')", { timeout: 10_000 });
      expect(await page.textContent("#error")).toMatch(/topic filter is not valid/);
    });
  });

  it("serves no source map: the console's sources stay out of public/", async () => {
    const js = await fetch(`${http}/app.js`);
    expect(js.status).toBe(200);
    expect((await js.text()).includes("//# sourceMappingURL=")).toBe(false);
    const map = await fetch(`${http}/app.js.map`);
    await map.body?.cancel();
    expect(map.status).toBe(404);
  });
});

/** A console page with the operator view watching, with the API token. */
async function openOperatorView(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // Within the test's 30 s, so that a failure leaves its screenshot.
  page.setDefaultTimeout(10_000);
  await page.goto(`${http}/`);
  await page.fill("#api-token", apiToken);
  await page.click("#operator-start");
  await page.waitForSelector('#chart-connections[data-points="1"]', { timeout: 10_000 });
  return page;
}

async function dataNumber(page: Page, selector: string, attribute: string): Promise<number> {
  return Number((await page.getAttribute(selector, attribute)) ?? Number.NaN);
}

/** Waits until `selector`'s `attribute` is at least `min` (the view polls every 3 s). */
async function waitForData(page: Page, selector: string, attribute: string, min: number): Promise<void> {
  const read = `Number(document.querySelector(${JSON.stringify(selector)})?.getAttribute(${JSON.stringify(attribute)}))`;
  await page.waitForFunction(`${read} >= ${min}`, undefined, { timeout: 20_000 });
}

/** Searches the client list for `text` (today: a whole client id, see console/operator/client-list.ts). */
async function searchClient(page: Page, text: string): Promise<void> {
  await page.fill("#client-prefix", text);
  await page.click("#client-search-go");
}

function rowOf(page: Page, clientId: string) {
  return page
    .locator("#clients tbody tr")
    .filter({ has: page.getByRole("button", { name: clientId, exact: true }) });
}

describe("operator view", () => {
  it("charts messages in and out while they flow, and the cost meter grows with them", async () => {
    const topic = unique("operator/flow");
    const sub = await connect(url, { clientId: unique("op-sub"), protocolVersion: 5 });
    const pubId = unique("op-pub");
    const pub = await connect(url, { clientId: pubId, protocolVersion: 5 });
    await sub.subscribeAsync(`${topic}/#`, { qos: 0 });
    await pub.subscribeAsync(`${topic}/commands/#`, { qos: 1 });
    const page = await openOperatorView();
    // 50 messages a second, each delivered once: in and out both near 50/s.
    const flow = setInterval(() => {
      for (let i = 0; i < 5; i++) pub.publish(`${topic}/reading`, "21.5", { qos: 0 });
    }, 100);
    try {
      await withScreenshot("operator-flow", [page], async () => {
        await waitForData(page, "#chart-in", "data-latest", 20);
        await waitForData(page, "#chart-out", "data-latest", 20);
        expect(await dataNumber(page, "#chart-connections", "data-latest")).toBeGreaterThanOrEqual(2);
        // The meter priced this test's own WebSocket messages, and it keeps growing.
        await waitForData(page, "#cost", "data-ws-messages-in", 100);
        const before = await dataNumber(page, "#cost", "data-dollars");
        expect(before).toBeGreaterThan(0);
        await waitForData(page, "#cost", "data-dollars", before * 1.1);
        expect(await page.textContent("#cost-month")).toMatch(/^\$[0-9.]+ a month$/);
        // For the README: the view with traffic, and a client's subscriptions open.
        await searchClient(page, pubId);
        await rowOf(page, pubId).getByRole("button", { name: pubId }).click();
        await page.locator("#client-subscriptions li", { hasText: `${topic}/commands/#` }).waitFor();
        mkdirSync("test-results", { recursive: true });
        await page.locator("#operator").screenshot({ path: "test-results/operator-view.png" });
      });
    } finally {
      clearInterval(flow);
      await Promise.all([pub.endAsync(), sub.endAsync(), page.close()]);
    }
  });

  it("shows a client's subscriptions and kicks it: the client gets DISCONNECT 0x98", async () => {
    const clientId = unique("kick-me");
    const client = await connect(url, { clientId, protocolVersion: 5 });
    await client.subscribeAsync(["kick/a/+", "kick/b/#"], { qos: 1 });
    const disconnected = new Promise<number | undefined>((resolve) =>
      client.once("disconnect", (packet) => resolve(packet.reasonCode)),
    );
    const page = await openOperatorView();
    try {
      await withScreenshot("operator-kick", [page], async () => {
        await searchClient(page, clientId);
        const row = rowOf(page, clientId);
        await row.waitFor();
        expect(await row.locator(".state").textContent()).toBe("online");
        await row.getByRole("button", { name: clientId }).click();
        await page.locator("#client-subscriptions li", { hasText: "kick/b/#" }).waitFor();
        expect(await page.locator("#client-subscriptions li").allTextContents()).toEqual(
          expect.arrayContaining(["kick/a/+", "kick/b/#"]),
        );
        await row.getByRole("button", { name: "Kick", exact: true }).click();
        // MQTT 5.0 3.14.2.1: 0x98 Administrative action.
        expect(await disconnected).toBe(0x98);
        await row.locator(".state", { hasText: "kicked" }).waitFor();
        // Its session is gone: the same search (GET /api/clients, the server's list) finds nothing.
        await searchClient(page, clientId);
        await page.locator("#client-note", { hasText: "No client connected with this prefix." }).waitFor();
        expect(await page.locator("#clients tbody tr").count()).toBe(0);
      });
    } finally {
      client.end(true);
      await page.close();
    }
  });

  it("shows client ids and topic filters from clients as text, never as markup", async () => {
    // Both are the client's to choose: a page that put them in as HTML would run this.
    // "/", "%", "?" and "#" too: the lookup must send the id as one path segment.
    const clientId = `<img src=x onerror="window.__xss=1"> /%?#${unique("x")}`;
    const filter = "<script>window.__xss=2</script>/#";
    const client: MqttClient = await connect(url, { clientId, protocolVersion: 5 });
    await client.subscribeAsync(filter, { qos: 0 });
    const page = await openOperatorView();
    try {
      await withScreenshot("operator-xss", [page], async () => {
        await searchClient(page, clientId);
        const row = rowOf(page, clientId);
        await row.waitFor();
        await row.getByRole("button", { name: clientId }).click();
        await page.locator("#client-subscriptions li", { hasText: filter }).waitFor();
        expect(await page.textContent("#client-detail-id")).toBe(clientId);
        expect(await page.locator("#operator img, #operator script").count()).toBe(0);
        expect(await page.evaluate("window.__xss")).toBeUndefined();
      });
    } finally {
      client.end(true);
      await page.close();
    }
  });

  it("lists clients page by page through GET /api/clients's next (the contract)", async () => {
    const page = await openOperatorView();
    const asked: Array<{ prefix: string | null; cursor: string | null; limit: string | null }> = [];
    // More than a page of clients is more than a test connects: this answers as
    // worker/clients-api.ts does (test/e2e/api.test.ts pages the real one).
    await page.route(/\/api\/clients\?/, async (route) => {
      const q = new URL(route.request().url()).searchParams;
      asked.push({ prefix: q.get("prefix"), cursor: q.get("cursor"), limit: q.get("limit") });
      expect(route.request().headers().authorization).toBe(`Bearer ${apiToken}`);
      const first = q.get("cursor") === null;
      await route.fulfill({
        contentType: "application/json",
        body: JSON.stringify(
          first
            ? {
                clients: [
                  { clientId: "plant-1", owner: "user:alice", gateway: "gateway-0", persistent: true },
                  {
                    clientId: 'plant-<b onmouseover="x">',
                    owner: null,
                    gateway: "gateway-1",
                    persistent: false,
                  },
                ],
                next: "c1",
              }
            : {
                clients: [
                  { clientId: "plant-9", owner: "anonymous", gateway: "gateway-0", persistent: false },
                ],
                next: null,
              },
        ),
      });
    });
    try {
      await withScreenshot("operator-list", [page], async () => {
        await searchClient(page, "plant-");
        await page.locator("#clients tbody tr").nth(1).waitFor();
        expect(await page.isVisible("#clients-more")).toBe(true);
        await page.click("#clients-more");
        await page.locator("#clients tbody tr").nth(2).waitFor();
        expect(await page.locator("#clients tbody tr button.link").allTextContents()).toEqual([
          "plant-1",
          'plant-<b onmouseover="x">',
          "plant-9",
        ]);
        expect(await page.locator("#clients b").count()).toBe(0);
        expect(await page.isVisible("#clients-more")).toBe(false);
        expect(asked).toEqual([
          { prefix: "plant-", cursor: null, limit: "50" },
          { prefix: "plant-", cursor: "c1", limit: "50" },
        ]);
      });
    } finally {
      await page.close();
    }
  });
});
