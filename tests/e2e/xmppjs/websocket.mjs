// XMPP over WebSocket (RFC 7395) with a real client library, xmpp.js
// (@xmpp/client), unmodified. Run by test_xmppjs.py:
//   node --experimental-websocket websocket.mjs URL PASSWORD PEER
// Logs in as alice over the WebSocket URL, sends PEER a message, waits for
// one back, and prints one JSON line per event.

import { client, xml } from "@xmpp/client";

const [url, password, peer] = process.argv.slice(2);
const report = (event) => console.log(JSON.stringify(event));

const timer = setTimeout(() => {
  report({ event: "timeout" });
  process.exit(2);
}, 30000);

const xmpp = client({
  service: url,
  domain: "localhost",
  username: "alice",
  password,
  resource: "browser",
});
xmpp.reconnect.delay = 1e9;
xmpp.on("error", (err) => report({ event: "error", error: String(err) }));
const reply = new Promise((resolve) => {
  xmpp.on("stanza", (stanza) => {
    if (stanza.is("message") && stanza.getChildText("body")) {
      resolve(stanza.getChildText("body"));
    }
  });
});

try {
  const address = await xmpp.start();
  report({ event: "online", jid: address.toString() });
  await xmpp.send(xml("presence"));
  await xmpp.send(
    xml("message", { to: peer, type: "chat", id: "ws1" }, xml("body", {}, "hello over WebSocket")),
  );
  report({ event: "reply", body: await reply });
  await xmpp.stop();
  report({ event: "done" });
} catch (err) {
  report({ event: "failed", error: String(err) });
  process.exitCode = 1;
}
clearTimeout(timer);
process.exit(process.exitCode ?? 0);
