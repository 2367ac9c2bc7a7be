// Opens a kpiwatch backtest report (file://) in headless Chromium and
// prints one JSON object of what it found; tests/report_html.rs asserts
// on it. Every wait is bounded.
//
// usage: node check_report.mjs PLAYWRIGHT_DIR CHROMIUM REPORT.html SCREENSHOT.png [SEARCH]
// (SCREENSHOT_HEIGHT=N in the environment: a screenshot of the top N
// pixels instead of the full page, after opening the first alert's chart,
// as the README's picture is taken)
//
// Reports: console errors and uncaught page errors; load_ms (navigation
// to the page's ready flag and its first chart drawn, wall clock) and the
// page's own performance.now() at both; the first chart's painted
// pixels; and with SEARCH, the series the search box lists for it, and
// the chart Enter opens (its title and painted pixels).
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [dir, chromiumPath, report, screenshot, query] = process.argv.slice(2);
const { chromium } = createRequire(join(resolve(dir), "package.json"))("playwright-core");
const WAIT = 30000;

// Flags the project runs Chromium with everywhere. Playwright adds
// --headless itself and gives each launch a fresh profile directory.
const args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args, timeout: WAIT });
const out = { console_errors: [], requests: [] };
try {
  const clip = Number(process.env.SCREENSHOT_HEIGHT || 0);
  const page = await browser.newPage({ viewport: { width: 1400, height: clip || 1000 } });
  page.setDefaultTimeout(WAIT);
  page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.console_errors.push(`uncaught: ${e.message}`));
  // The page must fetch nothing: anything but the file itself is recorded.
  const url = pathToFileURL(resolve(report)).href;
  page.on("request", (r) => { if (r.url() !== url) out.requests.push(r.url()); });

  const began = Date.now();
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready=true]");
  // Charts draw when on screen: bring the first one there (a long
  // incidents table can push it below the fold).
  await page.evaluate(() => { const c = document.querySelector("#charts .chart"); if (c) c.scrollIntoView(); });
  await page.waitForSelector("#charts canvas[data-drawn]", { state: "attached", timeout: 5000 }).catch(() => {});
  out.load_ms = Date.now() - began;
  await page.evaluate(() => window.scrollTo(0, 0));
  Object.assign(out, await page.evaluate(() => ({
    ready_at_ms: Number(document.body.dataset.readyAt),
    first_draw_at_ms: Number((document.querySelector("canvas[data-drawn-at]") || { dataset: {} }).dataset.drawnAt),
    charts: document.querySelectorAll("#charts .chart").length,
    alert_rows: document.querySelectorAll("#alerts tr.alert-row").length,
    kpi_rows: document.querySelectorAll("#kpis tr").length - 1,
    incident_rows: document.querySelectorAll("#incidents tr").length - 1,
    first_alert_words: (document.querySelector("#alerts tr.alert-row td.words") || {}).textContent || null,
  })));
  // Painted pixels of a canvas: not transparent, and the observed line's blue.
  const pixels = (selector) => page.evaluate((sel) => {
    const c = document.querySelector(sel);
    if (!c || !c.width) return null;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let painted = 0, blue = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0) painted++;
      if (d[i + 2] > 150 && d[i] < 90 && d[i + 3] > 200) blue++;
    }
    return { painted, blue, width: c.width, height: c.height };
  }, selector);
  out.first_chart = await pixels("#charts canvas[data-drawn]");

  if (query) {
    await page.fill("#search", query);
    await page.waitForSelector("#results button");
    out.search_hits = await page.$$eval("#results button", (bs) => bs.map((b) => b.textContent));
    await page.press("#search", "Enter");
    await page.waitForSelector("#picked .chart canvas[data-drawn]");
    out.picked = await page.$eval("#picked .chart h3", (h) => h.firstChild.textContent);
    out.picked_chart = await pixels("#picked .chart canvas[data-drawn]");
  }
  if (clip) {
    await page.click("#alerts tr.alert-row");
    await page.waitForSelector("#picked .chart:first-child canvas[data-drawn]");
  }
  // Charts draw when scrolled into view: pass over the page once, so the
  // full-page screenshot shows them drawn.
  await page.evaluate(async () => {
    for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight / 2) {
      window.scrollTo(0, y);
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    }
    window.scrollTo(0, 0);
  });
  await page.screenshot({ path: screenshot, fullPage: !clip });
  out.screenshot = screenshot;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
