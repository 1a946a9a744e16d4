// Drives the attendant console in Debian's Chromium, as a receptionist would: waits for the
// parked call's row, takes a screenshot, presses Retrieve, and waits for the row to go.
// Usage: node drive.mjs URL ORBIT SCREENSHOT. Prints one JSON line with what it saw.
import { chromium } from "playwright-core";

const [url, orbit, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  await page.goto(url);
  const row = page.locator(`tr[data-orbit="${orbit}"]`);
  await row.waitFor({ timeout: 10000 });
  out.row = (await row.innerText()).replace(/\s+/g, " ").trim();
  out.lots = (await page.locator("#lots tbody").innerText()).replace(/\s+/g, " ").trim();
  out.status = await page.locator("#status").innerText();
  await page.screenshot({ path: shot, fullPage: true });
  await row.getByRole("button", { name: "Retrieve" }).click();
  await row.waitFor({ state: "detached", timeout: 15000 });
  out.gone = true;
  out.after = (await page.locator("#calls tbody").innerText()).trim();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
