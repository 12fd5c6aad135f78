"""Starts a real stackbill server for the Azure SDK conformance tests: a fresh database seeded
through the stackbill CLI, `stackbill serve` on a free loopback port, stopped at the end.

The database is a SQLite file, or, when STACKBILL_TEST_POSTGRES names a PostgreSQL server (an
admin URL), a new database on it."""

import os
import re
import subprocess
import tempfile
import uuid

import pytest

ADMIN_TOKEN = "sdk-admin-token"
PARTNER = "contoso-csp"
DEFAULT_SUB = "d0000000-0000-0000-0000-000000000001"
EA_SUB = "e0000000-0000-0000-0000-000000000001"
CUSTOMER_SUB = "c0000000-0000-0000-0000-000000000001"
FOREIGN_SUB = "c0000000-0000-0000-0000-000000000002"
TENANT = "70000000-0000-0000-0000-000000000001"
OTHER_TENANT = "70000000-0000-0000-0000-000000000002"


def stackbill_bin():
    return os.environ.get("STACKBILL_BIN", "target/debug/stackbill")


def run(db, *args):
    result = subprocess.run(
        [stackbill_bin(), *args, *db], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"stackbill {' '.join(args)}: {result.stderr}"
    return result.stdout


def fresh_database(directory):
    """The stackbill arguments selecting a new, empty database."""
    admin = os.environ.get("STACKBILL_TEST_POSTGRES", "").strip()
    if not admin:
        return ["--db", os.path.join(directory, "stackbill.db")]
    name = "sdk_" + uuid.uuid4().hex
    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return ["--database-url", admin.rsplit("/", 1)[0] + "/" + name]


def seeded_database(directory):
    db = fresh_database(directory)
    run(db, "partner", "add", PARTNER, "--name", "Contoso")
    run(db, "partner", "add", "other-csp", "--name", "Fabrikam")
    run(db, "subscription", "add", DEFAULT_SUB, "--offer-type", "CSPSS", "--partner", PARTNER)
    run(db, "subscription", "add", EA_SUB, "--offer-type", "EA")
    run(db, "subscription", "add", CUSTOMER_SUB, "--offer-type", "CSP", "--partner", PARTNER,
        "--customer-tenant", TENANT)
    run(db, "subscription", "add", FOREIGN_SUB, "--offer-type", "CSP", "--partner", "other-csp",
        "--customer-tenant", OTHER_TENANT)
    return db


def start(db, *extra):
    env = dict(os.environ, STACKBILL_ADMIN_TOKEN=ADMIN_TOKEN, RUST_LOG="warn")
    process = subprocess.Popen(
        [stackbill_bin(), "serve", "--listen", "127.0.0.1:0", *db, *extra],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    for line in process.stderr:
        match = re.match(r"stackbill listening on (https?://\S+)", line)
        if match:
            return process, match.group(1)
    raise AssertionError("stackbill serve did not report its address")


@pytest.fixture(scope="session")
def _tls_server():
    """The same, over HTTPS with a self-signed certificate made for this run."""
    directory = tempfile.mkdtemp(prefix="stackbill-sdk-tls-")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    process, url = start(seeded_database(directory), "--tls-cert", cert, "--tls-key", key)
    assert url.startswith("https://")
    yield {"url": url, "cert": cert}
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def _http_server():
    directory = tempfile.mkdtemp(prefix="stackbill-sdk-")
    db = seeded_database(directory)
    process, url = start(db)
    yield {"url": url}
    process.terminate()
    process.wait(timeout=10)


class StaticCredential:
    """A credential handing out one fixed stackbill token."""

    def __init__(self, token="unused"):
        self._token = token

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, 2**31)


def _bearer_policy(token):
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class BearerPolicy(SansIOHTTPPolicy):
        def on_request(self, request):
            request.http_request.headers["Authorization"] = "Bearer " + token

    return BearerPolicy()


@pytest.fixture(scope="session", params=["http", "https"])
def server(request):
    """Every SDK test runs twice: over plain HTTP with a custom authentication policy (the SDK
    refuses bearer tokens over http otherwise), and over HTTPS with the SDK's own bearer policy
    and a certificate made for this run."""
    if request.param == "http":
        endpoint = dict(request.getfixturevalue("_http_server"))

        def make(cls, subscription, token=ADMIN_TOKEN, **kwargs):
            return cls(StaticCredential(), subscription, base_url=endpoint["url"],
                       authentication_policy=_bearer_policy(token), retry_total=0, **kwargs)
    else:
        endpoint = dict(request.getfixturevalue("_tls_server"))

        def make(cls, subscription, token=ADMIN_TOKEN, **kwargs):
            return cls(StaticCredential(token), subscription, base_url=endpoint["url"],
                       connection_verify=endpoint["cert"], retry_total=0, **kwargs)

    endpoint["client"] = make
    endpoint["scheme"] = request.param
    return endpoint


def registration_token(cloud_id, billing_model="PayAsYouUse"):
    out = subprocess.run(
        [stackbill_bin(), "registration-token", "--cloud-id", cloud_id, "--billing-model", billing_model],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()
