"""The documents system's activities through the http adapter, against the real sandbox over HTTP.

Every runbook's post-mortem is one request, stored by one adapter call under whichever of the three
recorded activity names the runbook uses; the war room's and the learning's post-mortems fill it from
their own shapes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.adapters import AdapterContext
from activities.documents import DocumentActivities
from activities.documents.http import HttpDocuments
from activities.http import HttpSettings
from schemas.briefs import TimelineEntry
from schemas.documents import DocumentReceipt, HandoffDocument, HandoffExecution, PostmortemRequest
from schemas.handoff import Handoff, HandoffOption, Trigger
from schemas.hotfix import Postmortem
from stanch.tls import default_tls_context
from tests.helpers import get

AT = datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)
TIMELINE = [TimelineEntry(at=AT, kind="decision", actor="alice", text="alice approved rollback")]


@pytest.fixture
async def documents(sandbox_url: str) -> AsyncIterator[DocumentActivities]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10, verify=default_tls_context()) as client:
        adapter = HttpDocuments(
            HttpSettings(), AdapterContext(platform_url=sandbox_url, platform_http=client)
        )
        yield DocumentActivities(adapter)


async def run(activity: Any, request: Any) -> Any:
    return await ActivityEnvironment().run(activity, request)


def request(incident_id: str, key: str) -> PostmortemRequest:
    return PostmortemRequest(
        idempotency_key=key,
        incident_id=incident_id,
        subject="s",
        what_happened="w",
        root_cause="r",
        impact="i",
        remediation="m",
        prevention=["p"],
        timeline=["t"],
    )


async def test_the_three_postmortem_names_store_one_shape_once_per_key(
    sandbox_url: str, documents: DocumentActivities
) -> None:
    incident = f"incident-docs-{uuid.uuid4().hex[:8]}"
    names = (
        documents.store_postmortem,
        documents.security_publish_postmortem,
        documents.postmortem_store_report,
    )
    receipts = [await run(name, request(incident, f"{incident}/{n}")) for n, name in enumerate(names)]
    replay = await run(documents.postmortem_store_report, request(incident, f"{incident}/2"))

    assert [type(receipt) for receipt in receipts] == [DocumentReceipt] * 3
    assert replay == receipts[2].model_copy(update={"replayed": True})
    stored = get(sandbox_url, "/postmortems", incident_id=incident)
    assert [p["postmortem_id"] for p in stored] == [receipt.id for receipt in receipts]
    expected = request(incident, "").body().model_dump()
    assert all({key: p[key] for key in expected} == expected for p in stored)


async def test_the_war_rooms_postmortem_is_stored_with_readable_timeline_lines(
    sandbox_url: str, documents: DocumentActivities
) -> None:
    incident = f"incident-docs-{uuid.uuid4().hex[:8]}"
    postmortem = Postmortem(
        incident_id=incident,
        service="checkout",
        severity="P1",
        title="P1 checkout: 500s",
        timeline=TIMELINE,
        root_cause="the latest deploy",
        impact="20 min",
        response="rolled back",
        prevention=["canary"],
        written_at=AT,
    )
    filled = postmortem.request().model_copy(update={"idempotency_key": f"{incident}/postmortem"})
    await run(documents.store_postmortem, filled)

    [stored] = get(sandbox_url, "/postmortems", incident_id=incident)
    assert (stored["subject"], stored["what_happened"], stored["remediation"]) == (
        "P1 checkout: 500s",
        "P1 incident on checkout",
        "rolled back",
    )
    assert stored["timeline"] == ["2026-12-01 10:00:05 [decision] alice: alice approved rollback"]


async def test_a_handoff_is_stored_then_carried_out_once_and_refused_after(
    sandbox_url: str, documents: DocumentActivities
) -> None:
    handoff_id = f"handoff-docs-{uuid.uuid4().hex[:8]}"
    handoff = Handoff(
        trigger=Trigger.explicit_request,
        subject="bot",
        context="c",
        options=[HandoffOption(name="pause-agent", description="stop it")],
    )
    document = HandoffDocument(
        idempotency_key=f"{handoff_id}/doc",
        handoff_id=handoff_id,
        incident_id="i",
        priority="P2",
        subject="bot",
        markdown=handoff.as_markdown(),
        handoff=handoff,
    )
    opened = await run(documents.store_handoff, document)
    execution = HandoffExecution(
        idempotency_key=f"{handoff_id}/go", handoff_id=handoff_id, option="pause-agent", decided_by="alice"
    )
    carried = await run(documents.execute_handoff, execution)
    again = await run(documents.execute_handoff, execution)

    assert (opened.status, carried.status, carried.executed_option) == ("open", "executed", "pause-agent")
    assert again.replayed
    desk = get(sandbox_url, f"/handoffs/{handoff_id}")
    assert desk["handoff"]["options"][0]["name"] == "pause-agent"
    # A new key for a hand-off already carried out is the desk's refusal: not retried.
    with pytest.raises(ApplicationError, match="already carried out") as refused:
        await run(documents.execute_handoff, execution.model_copy(update={"idempotency_key": "other"}))
    assert refused.value.non_retryable
