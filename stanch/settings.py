"""Process settings, read from `STANCH_*` environment variables and validated once at start-up."""

from __future__ import annotations

import base64
import binascii
import re
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

BUILD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")
DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STANCH_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "stanch"
    temporal_ui_port: int = Field(8233, ge=1, le=65535)
    # The frontend's HTTP API (e.g. http://127.0.0.1:7243): `stanch brief` / `approve` / `reject` answer over
    # it without loading the Python SDK (stanch/ops/temporal_http.py); unset or unreachable, they use gRPC.
    temporal_http_url: str | None = None

    # Workers and the CLI use the insert-only role; migrations and `stanch dev` use the owner.
    database_url: str = "postgresql://stanch_app@127.0.0.1:5433/stanch"
    database_admin_url: str = "postgresql://postgres@127.0.0.1:5433/stanch"
    postgres_port: int = Field(5433, ge=1, le=65535)

    host: str = "127.0.0.1"
    intake_port: int = Field(8080, ge=1, le=65535)
    intake_token: SecretStr | None = None
    # When set, every POST must carry `X-Stanch-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
    intake_hmac_secret: SecretStr | None = None
    # Alertmanager bodies are a few KB per alert; anything near this is a mistake or an attack.
    intake_max_body_bytes: int = Field(1_000_000, ge=1)
    sandbox_port: int = Field(8090, ge=1, le=65535)

    # Where platform actions (pause, rollback, …) and dev notifications go; the sandbox in dev and tests.
    platform_url: str = "http://127.0.0.1:8090"
    notify_webhook_url: str = "http://127.0.0.1:8090/chat/messages"

    config: Path = REPO_ROOT / "config" / "stanch.toml"
    home: Path = REPO_ROOT / ".stanch"

    # ---- operations (issue #6) ----
    # Temporal SDK metrics in Prometheus format on http://<host>:<port>/metrics; off unless set.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # Recorded as `identity` on every task this worker takes (ActivityTaskStarted, WorkflowTaskStarted);
    # unset, the SDK's `<pid>@<hostname>` is used, which already tells replicas apart.
    worker_identity: str | None = None
    # base64 of 32 random bytes: when set, every payload (alerts, approvals, results) is AES-GCM encrypted
    # before it reaches Temporal, so its history holds no plaintext. Every client must share the key.
    payload_key: SecretStr | None = None
    # `stanch codec-server`: the endpoint the Temporal UI calls to show encrypted payloads.
    codec_server_port: int = Field(8081, ge=1, le=65535)
    # Browser origins allowed to call the codec server (comma-separated); empty means the Temporal UI's.
    codec_cors_origins: str = ""

    # ---- worker versioning (issue 16, docs/deployment.md "Upgrading") ----
    # With a build id set, this worker is one version of the Temporal worker deployment `deployment_name`:
    # an incident runs to its end on the version it started on, and a new version takes only the incidents
    # that start after it is made current (`stanch deployment promote`). Unset (make dev, the tests, an
    # install that never upgrades with incidents parked): an unversioned worker, as before.
    deployment_name: str = "stanch"
    build_id: str | None = None

    # ---- the on-call console (issue 14) ----
    console_port: int = Field(8070, ge=1, le=65535)
    # Signs the session cookie; without it the console refuses to start (`stanch dev` makes one per home).
    console_secret: SecretStr | None = None
    # The console's private Ed25519 key (OpenSSH format), whose public half the policy trusts under
    # [approvals.services.console]: it signs the decisions of the person signed in (`via = "console"`).
    console_signing_key: Path | None = None
    # Sign-in with OpenID Connect when the issuer is set (client id and secret from the provider); local
    # accounts (`[people.<name>] password_hash`) work beside it.
    console_oidc_issuer: str | None = None
    console_oidc_client_id: str | None = None
    console_oidc_client_secret: SecretStr | None = None
    # Where the provider sends the browser back; default: this console's own /login/oidc/callback.
    console_public_url: str | None = None
    # Where the console's health page asks the intake (`GET /healthz`); default http://<host>:<intake_port>.
    intake_url: str | None = None
    # Links to the Temporal UI from an incident page; default: http://127.0.0.1:<temporal_ui_port>.
    temporal_ui_url: str | None = None

    # A blank variable means "not set": compose passes `STANCH_BUILD_ID=` when .env leaves it blank
    # ("unversioned"), and an empty secret or URL is no secret or URL.
    @field_validator(
        "console_secret", "console_oidc_client_secret", "temporal_http_url", "build_id", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("temporal_http_url")
    @classmethod
    def _http_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:7243")
        return value

    @field_validator("build_id")
    @classmethod
    def _build_id_is_a_name(cls, value: str | None) -> str | None:
        # It is typed into `temporal worker deployment ...` and image tags; Temporal takes at most 255 bytes.
        if value is not None and not BUILD_ID.fullmatch(value):
            raise ValueError("must be 1-255 letters, digits, '.', '_', '+' or '-' (e.g. a git sha or 1.4.2)")
        return value

    @field_validator("deployment_name")
    @classmethod
    def _deployment_name_has_no_dot(cls, value: str) -> str:
        # Temporal writes a version as `<deployment>.<build id>` and splits it at the first dot.
        if not DEPLOYMENT_NAME.fullmatch(value):
            raise ValueError("must be 1-100 letters, digits, '_' or '-' (no '.': it separates the build id)")
        return value

    @field_validator("payload_key", mode="before")
    @classmethod
    def _empty_payload_key_is_none(cls, value: object) -> object:
        # docker compose passes `STANCH_PAYLOAD_KEY=` when .env leaves it blank: that means "no encryption".
        return None if value == "" else value

    @field_validator("payload_key")
    @classmethod
    def _payload_key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so a wrong key stops the process at start-up, not at its first workflow.
        if value is None:
            return None
        try:
            key = base64.b64decode(value.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64 of 32 random bytes (e.g. `openssl rand -base64 32`)") from None
        if len(key) != 32:
            raise ValueError(f"must decode to 32 bytes (AES-256), not {len(key)}")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def load_settings_or_exit() -> Settings:
    """A bad value stops the process with one line naming the variable, not a traceback."""
    try:
        return get_settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "STANCH_" + str(first["loc"][0]).upper() if first["loc"] else "STANCH_*"
        print(f"stanch: invalid setting {name}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
