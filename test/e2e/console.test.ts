/**
 * The web console in a real browser: Debian's chromium driven by playwright-core
 * (no browser download). One page subscribes, another publishes, the message
 * shows up. A screenshot is saved under test-results/ when it fails.
 */
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { unique } from "../support/clients.ts";

const http = inject("brokerHttpUrl");
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
});
