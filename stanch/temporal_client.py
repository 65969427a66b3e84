"""One way to connect to Temporal, used by the worker, the intake, the CLI and the tests."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client

from stanch import telemetry
from stanch.codec import data_converter
from stanch.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.namespace,
        # pydantic's converter; with STANCH_PAYLOAD_KEY set, payloads are also encrypted (stanch.codec).
        data_converter=data_converter(settings),
        # Tracing when OTEL_TRACES_EXPORTER turned it on, nothing otherwise (stanch.telemetry).
        interceptors=telemetry.client_interceptors(),
        # Prometheus metrics when STANCH_METRICS_PORT is set; None is the SDK's default runtime.
        runtime=telemetry.runtime(settings),
        # None keeps the SDK's `<pid>@<host>`; a replica can name itself instead (STANCH_WORKER_IDENTITY).
        identity=settings.worker_identity,
    )


# Stanch's search attributes and their types (workflows/steps/incident.py upserts them); the dev server's
# `--search-attribute` flag, `stanch migrate` and the tests' servers register the same.
OPERATOR_TIMEOUT_SECONDS = 5.0
SEARCH_ATTRIBUTES = {
    "StanchRunbook": "Keyword",
    "StanchSeverity": "Keyword",
    "StanchService": "Keyword",
    "StanchState": "Keyword",
    "StanchAwaiting": "KeywordList",  # the people who may decide now
    "StanchEscalationLevel": "Int",  # how many levels of the ladder have run out (unset: none)
}

INDEXED_VALUE_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


async def missing_search_attributes(client: Client, namespace: str) -> list[str]:
    """Stanch's search attributes the namespace does not have (the worker refuses to start without them)."""
    known = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace), timeout=timedelta(seconds=OPERATOR_TIMEOUT_SECONDS)
    )
    return [name for name in SEARCH_ATTRIBUTES if name not in known.custom_attributes]


async def add_missing_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the missing ones (never re-add one: that is an error on some server versions)."""
    missing = await missing_search_attributes(client, namespace)
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={name: INDEXED_VALUE_TYPES[SEARCH_ATTRIBUTES[name]] for name in missing},
            ),
            timeout=timedelta(seconds=OPERATOR_TIMEOUT_SECONDS),
        )
    return missing
