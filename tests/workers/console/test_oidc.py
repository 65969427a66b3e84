"""The console's OpenID Connect sign-in (workers/console/oidc.py) against a real provider (conftest.py):
the whole code flow through the provider's own forms, and each way a sign-in must fail."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers import free_port
from tests.workers.console.conftest import Client, OidcProvider
from workers.console.oidc import OidcError, OidcLogin


def console_login(provider: OidcProvider, **overrides: object) -> OidcLogin:
    settings: dict[str, object] = {
        "issuer": provider.issuer,
        "client_id": provider.console.client_id,
        "client_secret": provider.console.client_secret,
        "redirect_uri": provider.redirect_uri,
    }
    settings.update(overrides)
    return OidcLogin(**settings)  # type: ignore[arg-type]


async def test_the_code_flow_returns_the_verified_email(oidc_provider: OidcProvider) -> None:
    login = console_login(oidc_provider)
    url, kept = await login.start()

    request = parse_qs(urlsplit(url).query)
    assert url.startswith(oidc_provider.issuer + "/")
    assert request["response_type"] == ["code"]
    assert request["client_id"] == [oidc_provider.console.client_id]
    assert request["redirect_uri"] == [oidc_provider.redirect_uri]
    assert set(request["scope"][0].split()) == {"openid", "email"}
    assert request["state"] == [kept["state"]] and request["nonce"] == [kept["nonce"]]
    # PKCE: the challenge goes out, the verifier stays with the caller.
    assert request["code_challenge_method"] == ["S256"] and request["code_challenge"][0]
    assert kept["code_verifier"] not in url

    callback = await oidc_provider.sign_in(url, "alice")
    assert set(callback) >= {"code", "state"}

    assert await login.finish(callback, kept) == "alice@example.test"


async def test_a_tampered_state_is_refused_before_the_code_is_spent(oidc_provider: OidcProvider) -> None:
    login = console_login(oidc_provider)
    url, kept = await login.start()
    callback = await oidc_provider.sign_in(url, "alice")

    with pytest.raises(OidcError, match="state does not match the sign-in this browser started"):
        await login.finish({**callback, "state": "x" + callback["state"]}, kept)
    with pytest.raises(OidcError, match="no sign-in is in progress"):
        await login.finish(callback, {})
    # Refused by the console itself: the provider never saw the code, which still signs alice in.
    assert await login.finish(callback, kept) == "alice@example.test"


async def test_a_replayed_code_is_refused_by_the_provider(oidc_provider: OidcProvider) -> None:
    login = console_login(oidc_provider)
    url, kept = await login.start()
    callback = await oidc_provider.sign_in(url, "alice")
    assert await login.finish(callback, kept) == "alice@example.test"

    with pytest.raises(OidcError, match=r"refused the code exchange \(invalid_grant"):
        await login.finish(callback, kept)


async def test_a_wrong_client_secret_is_refused_by_the_provider(oidc_provider: OidcProvider) -> None:
    login = console_login(oidc_provider, client_secret="not-the-secret")
    url, kept = await login.start()
    callback = await oidc_provider.sign_in(url, "alice")

    with pytest.raises(OidcError, match=r"refused the code exchange \(invalid_client"):
        await login.finish(callback, kept)


class Wire(httpx.AsyncBaseTransport):
    """The network, seen and changed by a test: the console's own httpx calls go through it, to the real
    provider (`network`, which the test closes)."""

    def __init__(self, network: httpx.AsyncHTTPTransport) -> None:
        self.network = network


class TokenEndpointOf(Wire):
    """The wire as seen by a console whose token endpoint answers for another client: every token
    request goes out with that client's credentials, so the provider issues a real, signed ID token for
    it — the substitution an ID token's audience exists to catch."""

    def __init__(self, network: httpx.AsyncHTTPTransport, client: Client) -> None:
        super().__init__(network)
        self.credentials = httpx.BasicAuth(client.client_id, client.client_secret)
        self.substituted = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/token"):
            request = next(self.credentials.auth_flow(request))
            self.substituted += 1
        return await self.network.handle_async_request(request)


async def test_an_id_token_for_another_audience_is_refused(oidc_provider: OidcProvider) -> None:
    other = console_login(
        oidc_provider,
        client_id=oidc_provider.other_app.client_id,
        client_secret=oidc_provider.other_app.client_secret,
    )
    url, kept = await other.start()
    callback = await oidc_provider.sign_in(url, "alice")
    async with httpx.AsyncHTTPTransport() as network:
        wire = TokenEndpointOf(network, oidc_provider.other_app)
        console = console_login(oidc_provider, transport=wire)

        with pytest.raises(OidcError, match="issued for another client, not this console"):
            await console.finish(callback, kept)
    assert wire.substituted == 1


class ForgedEmail(Wire):
    """A token response altered on the way: the ID token's payload says another e-mail, its signature is
    the provider's original one."""

    def __init__(self, network: httpx.AsyncHTTPTransport) -> None:
        super().__init__(network)
        self.forged = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.network.handle_async_request(request)
        if not (request.method == "POST" and request.url.path.endswith("/token")):
            return response
        body = json.loads(await response.aread())
        header, payload, signature = body["id_token"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["email"] = "mallory@example.test"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        body["id_token"] = f"{header}.{forged}.{signature}"
        self.forged += 1
        return httpx.Response(response.status_code, json=body)


async def test_an_id_token_with_a_broken_signature_is_refused(oidc_provider: OidcProvider) -> None:
    async with httpx.AsyncHTTPTransport() as network:
        wire = ForgedEmail(network)
        login = console_login(oidc_provider, transport=wire)
        url, kept = await login.start()
        callback = await oidc_provider.sign_in(url, "alice")

        with pytest.raises(OidcError, match="ID token is not valid for this console: bad_signature"):
            await login.finish(callback, kept)
    assert wire.forged == 1


async def test_a_cancelled_sign_in_reports_the_providers_error(oidc_provider: OidcProvider) -> None:
    login = console_login(oidc_provider)
    url, kept = await login.start()
    callback = await oidc_provider.sign_in(url, "alice", cancel=True)
    assert "code" not in callback

    with pytest.raises(
        OidcError, match=r"the provider refused the sign-in \(access_denied: End-User aborted"
    ):
        await login.finish(callback, kept)


async def test_an_unverified_email_is_refused(oidc_provider: OidcProvider) -> None:
    login = console_login(oidc_provider)
    url, kept = await login.start()
    callback = await oidc_provider.sign_in(url, "mallory")

    with pytest.raises(
        OidcError, match=re.escape("has not verified the e-mail address mallory@example.test")
    ):
        await login.finish(callback, kept)


async def test_an_issuer_that_is_not_the_providers_own_name_is_refused(oidc_provider: OidcProvider) -> None:
    with pytest.raises(OidcError, match="calls itself"):
        await console_login(oidc_provider, issuer=oidc_provider.issuer + "/").start()


async def test_an_id_token_with_another_nonce_is_refused(oidc_provider: OidcProvider) -> None:
    login = console_login(oidc_provider)
    url, kept = await login.start()
    callback = await oidc_provider.sign_in(url, "alice")

    # The session's nonce is not the one the token answers: a token from another sign-in, replayed.
    with pytest.raises(OidcError, match="its nonce is not this sign-in's"):
        await login.finish(callback, {**kept, "nonce": "a-nonce-from-another-sign-in"})


async def test_an_unreachable_provider_fails_the_sign_in_with_its_address() -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    login = OidcLogin(issuer, "stanch-console", "secret", "http://console.test/login/oidc/callback")

    with pytest.raises(OidcError, match=re.escape(f"cannot read the OpenID configuration of {issuer}")):
        await login.start()
