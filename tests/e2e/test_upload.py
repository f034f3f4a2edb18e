"""HTTP File Upload (XEP-0363) with slixmpp's own xep_0363 plugin: alice
uploads a picture and shares its URL in a message, as Conversations does
(with an XEP-0066 out-of-band element); bob downloads it, byte for byte."""

import asyncio
import io
import os
import urllib.request

from conftest import USERS, Client, free_port

HTTP_PORT = free_port()
SERVER_CONFIG = f"""
[[listeners]]
kind = "http"
address = "127.0.0.1:{HTTP_PORT}"

[http]
public_url = "http://127.0.0.1:{HTTP_PORT}"
"""


class Uploader(Client):
    def __init__(self, jid, password, server):
        super().__init__(jid, password, server)
        self.register_plugin("xep_0066")
        self.register_plugin("xep_0363")


def test_a_shared_picture_downloads_byte_for_byte(server):
    picture = os.urandom(48 * 1024)

    async def scenario():
        alice = await Uploader("alice@localhost", USERS["alice"], server).online()
        bob = await Client("bob@localhost", USERS["bob"], server).online()


        url = await alice.plugin["xep_0363"].upload_file(
            "holiday.jpg",
            size=len(picture),
            content_type="image/jpeg",
            input_file=io.BytesIO(picture),
            timeout=20,
        )
        msg = alice.make_message(mto="bob@localhost", mbody=url, mtype="chat")
        msg["oob"]["url"] = url
        msg.send()
        got = await asyncio.wait_for(bob.messages.get(), 20)
        alice.disconnect()
        bob.disconnect()
        return url, got

    url, got = asyncio.run(scenario())
    assert url.startswith(f"http://127.0.0.1:{HTTP_PORT}/upload/"), url
    assert url.endswith("/holiday.jpg"), url
    assert got["body"] == url
    with urllib.request.urlopen(got["body"], timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "image/jpeg"
        assert r.read() == picture
