"""The console in a real headless Chromium (Debian's, driven by Playwright; no browser is
downloaded): `stackbill demo` serves its month end on a free loopback port, and each test
signs in as a person would. Screenshots of every page go to STACKBILL_SCREENSHOTS (default: a
`screenshots` directory beside this file)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

ADMIN_TOKEN = "browser-admin-token"


def stackbill_bin():
    return os.environ.get("STACKBILL_BIN", "target/debug/stackbill")


def chromium_path():
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and os.path.exists(candidate):
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    pytest.fail("no Chromium: install Debian's chromium package (scripts/test.sh does)")


class Server:
    def __init__(self, base, db, directory):
        self.base = base
        self.db = db
        self.directory = directory

    def api(self, path, token=ADMIN_TOKEN, method="GET", body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request) as answer:
            text = answer.read().decode()
            return json.loads(text) if text else None

    def cli(self, *args):
        result = subprocess.run(
            [stackbill_bin(), *args, "--db", self.db], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"stackbill {' '.join(args)}: {result.stderr}"
        return result.stdout


@pytest.fixture(scope="session")
def server():
    directory = tempfile.mkdtemp(prefix="stackbill-browser-")
    db = os.path.join(directory, "demo.db")
    env = dict(os.environ, STACKBILL_ADMIN_TOKEN=ADMIN_TOKEN, RUST_LOG="warn")
    env.pop("STACKBILL_DATABASE_URL", None)
    process = subprocess.Popen(
        [stackbill_bin(), "demo", "--usage-records", "20000", "--listen", "127.0.0.1:0",
         "--db", db],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    base = None
    for line in process.stdout:
        found = re.search(r"serving on (http://\S+)", line)
        if found:
            base = found.group(1)
            break
    assert base, f"the demo did not start: {process.stderr.read()}"
    yield Server(base, db, directory)
    process.terminate()
    process.wait(timeout=30)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots():
    directory = os.environ.get("STACKBILL_SCREENSHOTS") or os.path.join(
        os.path.dirname(__file__), "screenshots"
    )
    os.makedirs(directory, exist_ok=True)
    return directory
