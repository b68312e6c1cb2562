"""verify_webhook on real deliveries: the hub signs, a receiver on loopback checks."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tidings import Client, WebhookVerificationError, verify_webhook

Delivery = tuple[dict[str, str], bytes]


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[Delivery]]]:
    received: queue.Queue[Delivery] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    server.shutdown()
    server.server_close()


def test_a_real_delivery_verifies_and_a_tampered_one_does_not(
    client: Client, uid: str, receiver: tuple[str, queue.Queue[Delivery]]
) -> None:
    url, received = receiver
    endpoint = client.create_webhook_endpoint(url, ["message.status_changed"])
    try:
        sent = client.send_message(to="+966501234567", body=f"hello {uid}", kind="billing")
        headers, body = received.get(timeout=20)
    finally:
        client.delete_webhook_endpoint(endpoint["id"])

    event = verify_webhook(endpoint["secret"], headers, body)
    assert event["type"] == "message.status_changed"
    assert event["data"]["message_id"] == sent["id"]

    with pytest.raises(WebhookVerificationError, match="no valid signature"):
        verify_webhook(endpoint["secret"], headers, body.replace(b"status", b"statux"))
    other_secret = "whsec_" + "A" * 44
    with pytest.raises(WebhookVerificationError, match="no valid signature"):
        verify_webhook(other_secret, headers, body)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(endpoint["secret"], headers, body, now=int(headers["webhook-timestamp"]) + 301)
    without = {k: v for k, v in headers.items() if k.lower() != "webhook-signature"}
    with pytest.raises(WebhookVerificationError, match="missing header webhook-signature"):
        verify_webhook(endpoint["secret"], without, body)
