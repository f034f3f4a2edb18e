// XEP-0388 SASL2, XEP-0386 Bind 2 and XEP-0484 FAST with a real client
// library, xmpp.js (@xmpp/client), unmodified. Run by test_xmppjs.py:
//   node fast_login.mjs PORT PASSWORD PEER
// Logs in over STARTTLS with the password (SASL2 + Bind 2, asking for a
// FAST token), sends PEER a message, goes offline, then logs in again with
// a wrong password and the token alone, and sends a second message. Prints
// one JSON line per event for the test to check.

import { client, xml } from "@xmpp/client";

const [port, password, peer] = process.argv.slice(2);
const report = (event) => console.log(JSON.stringify(event));

// One installation: the same user-agent id on both logins, as a phone has.
const userAgent = xml(
  "user-agent",
  { id: "4b1e1c8e-7f3a-4d51-9a51-0e2e0e2e0e2e" },
  xml("software", {}, "xmpp.js"),
  xml("device", {}, "e2e"),
);

let saved = null;

async function session(pass, label) {
  const xmpp = client({
    service: `xmpp://127.0.0.1:${port}`,
    domain: "localhost",
    username: "alice",
    password: pass,
    resource: "xmppjs",
    userAgent,
  });
  xmpp.reconnect.delay = 1e9;
  xmpp.fast.saveToken = async (t) => {
    saved = t;
    report({ event: "token", label, mechanism: t.mechanism, expiry: t.expiry });
  };
  xmpp.fast.fetchToken = async () => saved;
  xmpp.fast.deleteToken = async () => {
    saved = null;
  };
  const sent = [];
  xmpp.on("send", (el) => {
    if (el.name === "authenticate") sent.push(el.attrs.mechanism);
  });
  xmpp.on("error", (err) => report({ event: "error", label, error: String(err) }));
  const address = await xmpp.start();
  report({ event: "online", label, jid: address.toString(), mechanisms: sent });
  await xmpp.send(
    xml("message", { to: peer, type: "chat", id: label }, xml("body", {}, `hello from ${label}`)),
  );
  // A round trip, so the message is through before the stream closes.
  await xmpp.iqCaller.request(xml("iq", { type: "get" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  await xmpp.stop();
}

const timer = setTimeout(() => {
  report({ event: "timeout" });
  process.exit(2);
}, 30000);

try {
  await session(password, "password");
  await session("not the password", "token");
  report({ event: "done" });
} catch (err) {
  report({ event: "failed", error: String(err) });
  process.exitCode = 1;
}
clearTimeout(timer);
// Whatever xmpp.js leaves scheduled, the test is over.
process.exit(process.exitCode ?? 0);
