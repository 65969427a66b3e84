"""`stanch brief` / `approve` / `reject` over Temporal's HTTP API, without loading the Python SDK.

Importing `temporalio.client` costs more than the `temporal` CLI takes for a whole query (bench/README.md,
"The CLI against the `temporal` CLI"), so these commands first try the frontend's HTTP API (its
grpc-gateway, from the `google.api.http` annotations of temporal/api/workflowservice/v1/service.proto):

    POST /api/v1/namespaces/{namespace}/workflows/{workflow_id}/query/{query_type}
    POST /api/v1/namespaces/{namespace}/workflows/{workflow_id}/update/{update_name}

with the standard library only (urllib, json). `STANCH_TEMPORAL_HTTP_URL` names the endpoint; unset, or
when nothing answers there, the caller falls back to the SDK (`Unavailable`). The settings it needs are read
from the environment directly (`HttpSettings`), not through pydantic-settings. Payloads travel in their full
JSON form (`?noPayloadShorthand=true`: `{"metadata": {"encoding": <base64>}, "data": <base64>}`); with
`STANCH_PAYLOAD_KEY` set they go through the same `EncryptionCodec` the SDK path uses (stanch.codec, which
imports the payload protobuf but not the client).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from temporalio.api.common.v1 import Payload

    from stanch.codec import EncryptionCodec

JSON_PLAIN = b"json/plain"
# The SDK's own: reject a query on a closed run at once, rather than wait for a worker of its version.
NOT_OPEN = "QUERY_REJECT_CONDITION_NOT_OPEN"
COMPLETED_STAGE = "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"
# A query waits for a worker to answer; the server gives up by itself well before this.
TIMEOUT_SECONDS = 70.0
# The server answers an update that has not completed yet after ~10 s with its stage only; asking again
# with the same update id waits on the same update (the SDK polls the same way, over gRPC).
UPDATE_ROUNDS = 30


class Unavailable(Exception):
    """No Temporal HTTP API here (unset, refused, unreachable, or something else answering): use the SDK."""


class TemporalSaid(Exception):
    """Temporal answered with an error (gRPC status as JSON): the same message the SDK would raise."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class QueryRejected(Exception):
    """The run is closed (the query's reject condition): answer from its history instead."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class UpdateOutcome:
    """The update's answer: its result as JSON, or the validator's / handler's refusal sentence."""

    value: bytes | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class HttpSettings:
    """The four settings this path reads, straight from the environment: pydantic-settings alone costs about
    as long as the whole `temporal workflow query` (bench/README.md). Anything odd in them (None from
    `from_environment`) and the caller takes the SDK path, whose `Settings` reports it in one line."""

    url: str
    namespace: str = "default"
    worker_identity: str | None = None
    payload_key: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> HttpSettings | None:
        # pydantic-settings matches `STANCH_*` names case-insensitively; so does this.
        env = {name.upper(): value for name, value in environ.items() if name.upper().startswith("STANCH_")}
        url = env.get("STANCH_TEMPORAL_HTTP_URL") or None
        if url is None or not url.startswith(("http://", "https://")):
            return None
        payload_key = env.get("STANCH_PAYLOAD_KEY") or None
        if payload_key is not None:
            from stanch.codec import PayloadKeyError, decode_key

            try:
                decode_key(payload_key)
            except PayloadKeyError:
                return None
        return cls(
            url=url,
            namespace=env.get("STANCH_NAMESPACE", "default"),
            worker_identity=env.get("STANCH_WORKER_IDENTITY") or None,
            payload_key=payload_key,
        )


class TemporalHttp:
    def __init__(self, settings: HttpSettings) -> None:
        self.base = settings.url.rstrip("/")
        self.namespace = settings.namespace
        # The SDK's default client identity, so the history names the same caller whichever path sent it.
        self.identity = settings.worker_identity or f"{os.getpid()}@{socket.gethostname()}"
        self.codec: EncryptionCodec | None = None
        if settings.payload_key is not None:
            from stanch.codec import EncryptionCodec, decode_key

            self.codec = EncryptionCodec(decode_key(settings.payload_key))

    # ---- the two calls -------------------------------------------------------------------------------

    def query(self, workflow_id: str, query_type: str, *, reject_closed: bool = False) -> bytes | None:
        """The query's answer (its JSON); with `reject_closed`, QueryRejected when the run is closed."""
        body: dict[str, Any] = {
            "execution": {"workflowId": workflow_id},
            "query": {"queryType": query_type},
        }
        if reject_closed:
            body["queryRejectCondition"] = NOT_OPEN
        answer = self._post(
            f"workflows/{quote(workflow_id, safe='')}/query/{quote(query_type, safe='')}", body
        )
        rejected = answer.get("queryRejected")
        if rejected:
            raise QueryRejected(str(rejected.get("status", "")))
        return self._first_value(answer.get("queryResult"))

    def update(
        self, workflow_id: str, name: str, argument: bytes, update_id: str | None = None
    ) -> UpdateOutcome:
        """Execute an update with one argument (its JSON, as the pydantic converter writes it) and wait for
        its outcome, as `WorkflowHandle.execute_update` does. A caller that may resend it another way after
        `Unavailable` names the `update_id` and resends under it: the server runs one update once per id."""
        body = {
            "workflowExecution": {"workflowId": workflow_id},
            "waitPolicy": {"lifecycleStage": COMPLETED_STAGE},
            "request": {
                "meta": {"updateId": update_id or str(uuid.uuid4()), "identity": self.identity},
                "input": {"name": name, "args": {"payloads": [self._payload(argument)]}},
            },
        }
        path = f"workflows/{quote(workflow_id, safe='')}/update/{quote(name, safe='')}"
        for _ in range(UPDATE_ROUNDS):
            answer = self._post(path, body)
            outcome = answer.get("outcome")
            if not outcome:
                continue  # accepted but not completed within the server's wait: ask again, same id
            if "failure" in outcome:
                failure = outcome["failure"] or {}
                return UpdateOutcome(refusal=str(failure.get("message") or "update failed"))
            return UpdateOutcome(value=self._first_value(outcome.get("success")))
        raise TemporalSaid(4, f"update {name} did not complete")  # 4: DEADLINE_EXCEEDED

    # ---- payloads ----------------------------------------------------------------------------------------

    def _payload(self, data: bytes) -> dict[str, Any]:
        metadata: dict[str, bytes] = {"encoding": JSON_PLAIN}
        if self.codec is not None:
            metadata, data = _through(self.codec.encode, metadata, data)
        return {
            "metadata": {key: base64.b64encode(value).decode() for key, value in metadata.items()},
            "data": base64.b64encode(data).decode(),
        }

    def _first_value(self, payloads: dict[str, Any] | None) -> bytes | None:
        """The first payload's JSON, for the caller's pydantic model to validate (as the SDK's converter does)."""
        items = (payloads or {}).get("payloads") or []
        if not items:
            return None
        metadata = {key: base64.b64decode(value) for key, value in (items[0].get("metadata") or {}).items()}
        data = base64.b64decode(items[0].get("data") or "")
        if self.codec is not None:
            metadata, data = _through(self.codec.decode, metadata, data)
        encoding = metadata.get("encoding")
        if encoding == b"binary/null":
            return None
        if encoding != JSON_PLAIN:
            raise Unavailable(f"a payload encoded {encoding!r}: left to the SDK's converter")
        return data

    # ---- the wire ---------------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base}/api/v1/namespaces/{quote(self.namespace, safe='')}/{path}?noPayloadShorthand=true"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        # No proxy from the environment: the endpoint is Temporal's frontend, as the SDK dials it directly.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                answer = _json_object(response.read())
        except urllib.error.HTTPError as error:
            failed = _json_object(error.read())
            if failed is None or "code" not in failed or "message" not in failed:
                # Not Temporal's gateway speaking (a proxy, an old server without the route): the SDK path.
                raise Unavailable(f"HTTP {error.code} from {self.base}") from None
            raise TemporalSaid(int(failed["code"]), str(failed["message"])) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise Unavailable(f"{self.base}: {error}") from None
        if answer is None:
            raise Unavailable(f"{self.base} did not answer JSON")
        return answer


def _through(
    codec_step: Callable[[Sequence[Payload]], Coroutine[Any, Any, list[Payload]]],
    metadata: dict[str, bytes],
    data: bytes,
) -> tuple[dict[str, bytes], bytes]:
    """One payload through the codec's encode or decode; asyncio and the payload protobuf are imported only
    here, when a payload key is set (~60 ms off the plain path)."""
    import asyncio

    from temporalio.api.common.v1 import Payload

    [payload] = asyncio.run(codec_step([Payload(metadata=metadata, data=data)]))
    return dict(payload.metadata), payload.data


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
