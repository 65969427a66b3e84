"""A real OpenID provider for the console's sign-in tests: panva's oidc-provider (tests/oidc/, pinned by its
package-lock.json, installed by `make install`) in one node process per test session, with two static
clients and a few accounts; `OidcProvider.sign_in` is the browser that goes through its login and consent
forms."""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest

from stanch.settings import REPO_ROOT
from stanch.tls import default_tls_context

PROVIDER_DIR = REPO_ROOT / "tests" / "oidc"
# node starts the provider in well under a second; this bounds a hung start, it is not a wait.
PROVIDER_STARTUP_SECONDS = 30.0
# Nothing listens there: the browser stops at the provider's redirect to it, as a console would receive it.
REDIRECT_URI = "http://console.test/login/oidc/callback"
# At most this many pages and redirects between the authorization URL and the callback.
MAX_HOPS = 20


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str


# The console, and another application registered at the same provider with the same redirect URI (so
# that only the audience tells their ID tokens apart).
CONSOLE = Client("stanch-console", "console-secret-for-tests")
OTHER_APP = Client("other-app", "other-app-secret-for-tests")
ACCOUNTS = {
    "alice": {"email": "alice@example.test", "email_verified": True},
    # An account whose address the provider has not verified: the console must refuse it.
    "mallory": {"email": "mallory@example.test", "email_verified": False},
}


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    console: Client = CONSOLE
    other_app: Client = OTHER_APP
    redirect_uri: str = REDIRECT_URI

    async def sign_in(self, authorization_url: str, login: str, *, cancel: bool = False) -> dict[str, str]:
        """Be the person's browser: open the authorization URL, fill the provider's login form with `login`
        (the development forms take any password), confirm its consent form — or press its Cancel link —
        and return the query of the redirect to the console's callback."""
        async with httpx.AsyncClient(
            follow_redirects=False, timeout=10.0, verify=default_tls_context()
        ) as browser:
            response = await browser.get(authorization_url)
            for _ in range(MAX_HOPS):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if location.startswith(REDIRECT_URI):
                        return dict(parse_qsl(urlsplit(location).query))
                    response = await browser.get(location)
                    continue
                assert response.status_code == 200, f"{response.url}: {response.status_code} {response.text}"
                page = Page.parse(response.text)
                if cancel:
                    response = await browser.get(urljoin(str(response.url), page.links["[ Cancel ]"]))
                    continue
                fields = dict(page.fields)
                if fields.get("prompt") == "login":
                    fields.update(login=login, password="any password")
                response = await browser.post(urljoin(str(response.url), page.action), data=fields)
            raise AssertionError(f"no redirect to {REDIRECT_URI} after {MAX_HOPS} pages")


class Page(HTMLParser):
    """The one form of a provider page (its action and fields) and its links by text."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self._href: str | None = None

    @classmethod
    def parse(cls, html: str) -> Page:
        page = cls()
        page.feed(html)
        assert page.action, f"no form on the provider's page:\n{html}"
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = attributes.get("action", "")
        elif tag == "input" and "name" in attributes:
            self.fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "a":
            self._href = attributes.get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def _registration(client: Client) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    }


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: run `bash .ci/system-packages` (Debian's nodejs and npm)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"the test OpenID provider is not installed: run `make install` ({PROVIDER_DIR})")
    config = {"clients": [_registration(CONSOLE), _registration(OTHER_APP)], "accounts": ACCOUNTS}
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [node, "provider.mjs", json.dumps(config)],
            cwd=PROVIDER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            yield OidcProvider(issuer=_announced_issuer(process, stderr))
        finally:
            # Closing stdin is the provider's signal to exit (provider.mjs); kill only if it does not.
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _announced_issuer(process: subprocess.Popen[bytes], stderr: tempfile._TemporaryFileWrapper[bytes]) -> str:
    """The issuer the provider prints once it serves; its stderr in the failure if it never does."""
    assert process.stdout is not None
    deadline = time.monotonic() + PROVIDER_STARTUP_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = process.stdout.readline()
                if line:
                    return str(json.loads(line)["issuer"])
                break  # end of output: the provider exited
    stderr.seek(0)
    process.kill()
    raise RuntimeError(f"the OpenID provider did not start:\n{stderr.read().decode(errors='replace')}")
