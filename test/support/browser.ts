/** Debian's Chromium driven by playwright-core (no browser download), for tests of the console. */
import { type Browser, chromium, type Page } from "playwright-core";

/** `args`: more command-line switches (the benchmark's fleets keep background pages' timers running). */
export function launchChromium(args: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...args,
    ],
  });
}

/** Runs `check` on the console's rules-and-bridges panel, loaded with the API token; closes the browser after. */
export async function withIntegrationsPanel(
  httpUrl: string,
  token: string,
  check: (page: Page) => Promise<void>,
): Promise<void> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`${httpUrl}/`);
    await page.fill("#api-token", token);
    await page.click("#integrations-load");
    await check(page);
  } finally {
    await browser.close();
  }
}
