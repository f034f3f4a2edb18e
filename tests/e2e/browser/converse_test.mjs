// Converse.js (from npm, unmodified) in headless Chromium, against Chorus:
// logs in as alice over XMPP over WebSocket, sends PEER a message, waits
// for the answer, then shares a picture through HTTP File Upload
// (XEP-0363) from the chat's file picker. Run by test_browser.py:
//
//   node converse_test.mjs WEBSOCKET_URL PASSWORD PEER PICTURE SCREENSHOT
//
// Serves the page and Converse's files itself on a loopback port, prints
// one JSON line per event, and saves a screenshot of the conversation.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const [wsUrl, password, peer, picture, screenshot] = process.argv.slice(2);
const boshUrl = wsUrl.replace(/^ws/, "http").replace("/xmpp-websocket", "/http-bind");
const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "node_modules", "converse.js", "dist");
const report = (event) => console.log(JSON.stringify(event));

const page = (transport) => `<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script>
</head><body>
<script type="module">
  // A plugin only to reach Converse's API from the test.
  converse.plugins.add("chorus-test", {
    initialize() { window.chorusApi = this._converse.api; },
  });
  converse.initialize({
    assets_path: "/dist/",
    ${transport === "bosh" ? "bosh_service_url" : "websocket_url"}: ${JSON.stringify(transport === "bosh" ? boshUrl : wsUrl)},
    jid: "alice@localhost",
    password: ${JSON.stringify(password)},
    auto_login: true,
    view_mode: "fullscreen",
    discover_connection_methods: false,
    allow_non_roster_messaging: true,
    play_sounds: false,
    show_desktop_notifications: false,
    whitelisted_plugins: ["chorus-test"],
    loglevel: ${JSON.stringify(process.env.CONVERSE_LOGLEVEL ?? "warn")},
  });
</script></body></html>`;

const types = {
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".ttf": "font/ttf",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
  ".png": "image/png",
};

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (url.pathname === "/" || url.pathname === "/bosh") {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(page(url.pathname === "/bosh" ? "bosh" : "websocket"));
    return;
  }
  if (url.pathname.startsWith("/dist/")) {
    const file = path.normalize(path.join(dist, url.pathname.slice("/dist/".length)));
    if (file.startsWith(dist) && fs.existsSync(file) && fs.statSync(file).isFile()) {
      res.writeHead(200, { "Content-Type": types[path.extname(file)] ?? "application/octet-stream" });
      fs.createReadStream(file).pipe(res);
      return;
    }
  }
  res.writeHead(404);
  res.end();
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const timer = setTimeout(async () => {
  report({ event: "timeout" });
  process.exit(2);
}, 60000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const tab = await browser.newPage({ viewport: { width: 1100, height: 750 } });
  tab.on("pageerror", (e) => report({ event: "pageerror", error: String(e) }));
  tab.on("console", (m) => {
    if (process.env.CONVERSE_LOGLEVEL || m.type() === "error") {
      report({ event: "console", type: m.type(), text: m.text().slice(0, 300) });
    }
  });
  await tab.goto(origin);
  await tab.waitForFunction(() => window.chorusApi?.connection?.connected?.() === true, null, {
    timeout: 30000,
  });
  const jid = await tab.evaluate(() => window.chorusApi.connection.get().jid);
  report({ event: "online", jid });

  await tab.evaluate((peer) => window.chorusApi.chats.open(peer, {}, true), peer);
  const textarea = tab.locator("converse-chat textarea.chat-textarea").first();
  await textarea.waitFor({ timeout: 20000 });
  await textarea.fill("hello from the browser");
  await textarea.press("Enter");
  report({ event: "sent" });
  await tab.locator(".chat-msg__text", { hasText: "hello back" }).first().waitFor({ timeout: 20000 });
  report({ event: "reply" });

  // XEP-0363 from the chat's file picker.
  await tab.locator("converse-chat input.fileupload").first().setInputFiles(picture);
  await tab.locator("converse-chat .chat-msg a[href*='/upload/'], converse-chat .chat-msg img[src*='/upload/']")
    .first()
    .waitFor({ timeout: 20000 });
  report({ event: "shared" });
  await tab.locator(".chat-msg__text", { hasText: "got the picture" }).first().waitFor({ timeout: 20000 });
  report({ event: "acknowledged" });
  await tab.screenshot({ path: screenshot });
  report({ event: "screenshot", path: screenshot });
  await tab.close();

  // The same over BOSH (XEP-0206), in a fresh browser context.
  const context = await browser.newContext({ viewport: { width: 1100, height: 750 } });
  const bosh = await context.newPage();
  bosh.on("pageerror", (e) => report({ event: "pageerror", error: String(e) }));
  await bosh.goto(`${origin}/bosh`);
  await bosh.waitForFunction(() => window.chorusApi?.connection?.connected?.() === true, null, {
    timeout: 30000,
  });
  report({
    event: "bosh-online",
    jid: await bosh.evaluate(() => window.chorusApi.connection.get().jid),
  });
  await bosh.evaluate((peer) => window.chorusApi.chats.open(peer, {}, true), peer);
  const boshText = bosh.locator("converse-chat textarea.chat-textarea").first();
  await boshText.waitFor({ timeout: 20000 });
  await boshText.fill("hello over BOSH");
  await boshText.press("Enter");
  await bosh
    .locator(".chat-msg__text", { hasText: "hello back over BOSH" })
    .first()
    .waitFor({ timeout: 20000 });
  report({ event: "bosh-reply" });
  report({ event: "done" });
} catch (err) {
  report({ event: "failed", error: String(err) });
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await browser.close();
  server.close();
}
process.exit(process.exitCode ?? 0);
