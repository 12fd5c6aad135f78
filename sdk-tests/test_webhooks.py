"""Webhooks as a receiver sees them: stackbill's signatures verified by the Standard Webhooks
reference library for Python (`standardwebhooks`), an implementation independent of the
server's."""

import datetime
import http.server
import json
import os
import queue
import tempfile
import threading
import urllib.request

import standardwebhooks

from conftest import ADMIN_TOKEN, DEFAULT_SUB, PARTNER, run, seeded_database, start

CLOUD = "ca000000-0000-0000-0000-0000000000f1"


def receiver():
    """An HTTP server on loopback that queues every request it gets and answers 204."""
    received = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            received.put((dict(self.headers), body.decode()))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/hook", received


def call(base, method, path, body=None, content_type="application/json"):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + ADMIN_TOKEN)
    if data is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def test_events_verify_with_the_standard_webhooks_library():
    directory = tempfile.mkdtemp(prefix="stackbill-webhooks-")
    db = seeded_database(directory)
    run(db, "registration", "add", "hub", "--cloud-id", CLOUD, "--subscription", DEFAULT_SUB)
    process, base = start(db, "--secret-key-file", os.path.join(directory, "secret.key"),
                          "--collect-every", "0")
    server, url, received = receiver()
    try:
        endpoint = call(base, "POST", "/v1/webhooks",
                        {"partnerId": PARTNER, "url": url, "eventTypes": ["*"]})
        hook = standardwebhooks.Webhook(endpoint["secret"])
        start_time = datetime.datetime.now(datetime.timezone.utc).replace(
            minute=0, second=0, microsecond=0) - datetime.timedelta(hours=2)
        record = {"id": "r1", "cloudId": CLOUD, "tenantId": "70000000-0000-0000-0000-0000000000ee",
                  "subscriptionId": "50000000-0000-0000-0000-000000000001",
                  "meterId": "b4438d5d-453b-4ee1-b42a-dc72e377f1e4", "quantity": "2",
                  "usageStartTime": start_time.isoformat().replace("+00:00", "Z"),
                  "usageEndTime": (start_time + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z")}
        call(base, "POST", "/v1/usage", (json.dumps(record) + "\n").encode(),
             content_type="application/x-ndjson")
        headers, body = received.get(timeout=30)
        payload = hook.verify(body, {k.lower(): v for k, v in headers.items()})
        assert payload["type"] == "usage.unmapped_tenant"
        assert payload["data"]["cloudId"] == CLOUD
        assert payload["data"]["subscriptionId"] == DEFAULT_SUB
        # A signature over other bytes is refused by the same library.
        forged = {k.lower(): v for k, v in headers.items()}
        try:
            hook.verify(body.replace("2", "3", 1), forged)
            raise AssertionError("a changed body must not verify")
        except standardwebhooks.WebhookVerificationError:
            pass
    finally:
        server.shutdown()
        process.terminate()
        process.wait(timeout=10)
