"""Sign-in to the console with OpenID Connect (issue 14): the authorization-code flow with state, nonce and
PKCE, and a verified ID token, through Authlib over httpx.

The console keeps no server-side state for a sign-in in progress: `start` hands back the values the
callback needs (state, nonce, PKCE verifier) for the caller's signed session cookie, and `finish` checks the
callback against them. Everything the protocol asks of a relying party — discovery, the code exchange, the
ID token's signature against the issuer's JWKS (fetched again once when it names an unknown key, as after
a key rotation), iss, aud, azp, exp, iat, nonce, at_hash — is Authlib's; this module only decides which
values must match and says in plain words what went wrong.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError

# `email` for the address the console maps to a person of the policy; nothing else is asked for.
SCOPE = "openid email"
# Discovery, token and JWKS calls; a provider slower than this fails the sign-in with a clear message.
HTTP_TIMEOUT_SECONDS = 10.0
# Clock skew allowed between the provider and the console on exp / iat.
LEEWAY_SECONDS = 60
# What `start` hands to the caller's session and `finish` needs back.
KEPT = ("state", "nonce", "code_verifier")

# What a failed ID-token claim means for the person signing in (and for the operator reading the log).
CLAIM_MEANINGS = {
    "aud": "it was issued for another client, not this console",
    "azp": "it was issued to another client, not this console",
    "iss": "it was issued by another provider than the configured issuer",
    "nonce": "its nonce is not this sign-in's (a replayed or injected ID token)",
    "at_hash": "it does not belong to the access token it came with",
}


class OidcError(Exception):
    """A sign-in that must not succeed; the message says why, and holds no secret or token."""


class OidcLogin:
    """One OpenID provider and this console's client registration at it.

    `transport` is httpx's own hook (a proxy, or a test's view of the wire); None is the network.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        client_kwargs: dict[str, Any] = {
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "timeout": HTTP_TIMEOUT_SECONDS,
        }
        if transport is not None:
            client_kwargs["transport"] = transport
        # Authlib's registry is only a factory here: the Starlette integration's session helpers are not
        # used, since the caller keeps the values in its own signed session.
        self._client = OAuth().register(
            name="stanch-console",
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )

    async def start(self) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL for the code flow (with state, nonce, PKCE) and the values the
        caller keeps in its signed session until the callback."""
        await self._metadata()
        try:
            authorization = await self._client.create_authorization_url(self.redirect_uri)
        except (httpx.HTTPError, RuntimeError) as exc:
            raise OidcError(f"cannot build the sign-in request for {self.issuer}: {exc}") from exc
        kept = {name: str(authorization[name]) for name in KEPT}
        return str(authorization["url"]), kept

    async def finish(self, query: Mapping[str, str], kept: Mapping[str, str]) -> str:
        """Exchange the callback's code, validate the ID token (signature by the issuer's JWKS, iss, aud,
        exp, nonce), return the verified e-mail (require email_verified when the provider sends it).
        Raise OidcError(message) on any failure: wrong state, error=… from the provider, bad token."""
        missing = [name for name in KEPT if not kept.get(name)]
        if missing:
            raise OidcError(
                "no sign-in is in progress in this browser (its session holds no state); start again"
            )
        # The state first: an error= or a code on a callback this browser did not start is someone else's.
        state = query.get("state", "")
        if not hmac.compare_digest(state.encode(), kept["state"].encode()):
            raise OidcError("the callback's state does not match the sign-in this browser started")
        if "error" in query:
            description = query.get("error_description")
            reason = f"{query['error']}: {description}" if description else query["error"]
            raise OidcError(f"the provider refused the sign-in ({reason})")
        # RFC 9207: a provider that names itself on the callback must be the one this console asked.
        if "iss" in query and query["iss"] != self.issuer:
            raise OidcError(
                f"the callback comes from {query['iss']}, not the configured issuer {self.issuer}"
            )
        code = query.get("code")
        if not code:
            raise OidcError("the callback carries no authorization code")

        await self._metadata()
        try:
            token = await self._client.fetch_access_token(
                redirect_uri=self.redirect_uri, code=code, code_verifier=kept["code_verifier"]
            )
        except OAuthError as exc:
            # invalid_grant: a code used twice, expired, or issued to another client; invalid_client: a wrong
            # client secret. The provider's own words say which.
            raise OidcError(
                f"the provider refused the code exchange ({exc.error}: {exc.description or 'no description'})"
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"the code exchange with {self.issuer} failed: {exc}") from exc
        if "id_token" not in token:
            raise OidcError(
                "the provider returned no ID token (is the openid scope allowed for this client?)"
            )

        claims = await self._verified_claims(token, kept["nonce"])
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise OidcError("the ID token carries no e-mail address (allow the email scope for this client)")
        # Only when the provider says so: some never send the claim, and then the issuer vouches for it.
        if "email_verified" in claims and claims["email_verified"] is not True:
            raise OidcError(f"the provider has not verified the e-mail address {email}")
        return email

    async def _metadata(self) -> dict[str, Any]:
        """The provider's discovery document, once per instance; its issuer must be the configured one
        (OpenID Connect Discovery §4.3), or its tokens would be checked against the wrong name."""
        try:
            metadata: dict[str, Any] = await self._client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"cannot read the OpenID configuration of {self.issuer}: {exc}") from exc
        if metadata.get("issuer") != self.issuer:
            raise OidcError(
                f"the provider at {self.issuer} calls itself {metadata.get('issuer')!r}; "
                "set the issuer to exactly that name"
            )
        # An unsigned ID token is never acceptable, whatever the provider advertises.
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        metadata["id_token_signing_alg_values_supported"] = [a for a in algorithms if a != "none"]
        return metadata

    async def _verified_claims(self, token: Mapping[str, Any], nonce: str) -> Mapping[str, Any]:
        # Authlib checks aud only when told to: both the issuer and this client's id are required values.
        options = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.client_id},
        }
        try:
            claims: Mapping[str, Any] = await self._client.parse_id_token(
                dict(token), nonce=nonce, claims_options=options, leeway=LEEWAY_SECONDS
            )
        except ExpiredTokenError as exc:
            raise OidcError("the ID token is not valid for this console: it has expired") from exc
        except ClaimError as exc:
            meaning = CLAIM_MEANINGS.get(exc.claim, f"its {exc.claim!r} claim is missing or wrong")
            raise OidcError(f"the ID token is not valid for this console: {meaning}") from exc
        except JoseError as exc:
            # A bad signature, a key the provider's JWKS does not hold, a token that is no JWT.
            raise OidcError(f"the ID token is not valid for this console: {exc}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"cannot read the signing keys of {self.issuer}: {exc}") from exc
        return claims
