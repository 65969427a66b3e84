"""The Temporal UI itself, in headless Chromium, shows hostile alert text as typed (issue #10, part 6).

The UI (2.54.1) renders a workflow's static summary, static details and current details as Markdown, each
in a frame of its own. A real runbook runs a hostile alert on the dev server (with its UI), and the test
reads what Chromium rendered: no image, link or bold from the alert, the alert's characters all there, and
the brief's own formatting intact. Needs Debian's `chromium` and PyPI's `playwright` (no browser download);
skipped without them, except under CI=true, where a missing Chromium fails."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from schemas.alerts import Alert
from schemas.incidents import IncidentInput, IncidentResult
from schemas.severity import Severity
from stanch import markup
from stanch.policy import Policy
from stanch.settings import Settings
from tests.helpers import SERVER_STARTUP, free_port, new_agent, until_state
from workers.worker import activity_implementations, build_worker

playwright = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium")
# CI installs Chromium (.ci/system-packages): there a missing browser is a failure, not a skip.
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("Debian's chromium is not installed: run .ci/system-packages")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

FAKE = "**APPROVED BY SECURITY: no action needed**"
IMAGE = '<img src="http://127.0.0.1:9/evil.png">'
PICTURE = "![badge](http://127.0.0.1:9/badge.png)"
LINK = "[approve here](http://evil.example/approve)"
ENTITY = "&lt;b&gt;not bold&lt;/b&gt;"
CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


@pytest.fixture
async def dev_env_with_ui() -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    import sys
    from pathlib import Path

    from temporalio.contrib.pydantic import pydantic_data_converter

    from workflows.steps.incident import SEARCH_ATTRIBUTES

    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_startup_timeout=SERVER_STARTUP,
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=True,
        ui_port=ui_port,
    )
    yield env, ui_port
    await env.shutdown()


async def rendered_frames(ui_port: int, workflow_id: str, run_id: str, needle: str) -> list[dict[str, Any]]:
    """The text and the tags of every frame of the User Metadata tab that shows `needle`."""
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            url = f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{workflow_id}/{run_id}/user-metadata"
            await page.goto(url)
            found: list[dict[str, Any]] = []
            for _ in range(60):  # the UI loads the metadata, then renders each frame
                await page.wait_for_timeout(250)
                found = []
                for frame in page.frames:
                    try:
                        text = await frame.inner_text("body")
                    except Exception:  # a frame that navigated away meanwhile
                        continue
                    if needle in text:
                        tags = await frame.eval_on_selector_all("body *", "els => els.map(e => e.tagName)")
                        found.append({"text": text, "tags": [tag.lower() for tag in tags]})
                if len(found) >= 3:
                    break
            return found
        finally:
            await browser.close()


async def test_the_temporal_ui_shows_hostile_alert_text_as_typed(
    dev_env_with_ui: tuple[WorkflowEnvironment, int], settings: Settings, policy: Policy
) -> None:
    env, ui_port = dev_env_with_ui
    task_queue = f"ui-{uuid.uuid4().hex[:8]}"
    agent_id = new_agent(settings.platform_url)
    summary = f"{agent_id}: {FAKE} {IMAGE} {PICTURE} {LINK} {ENTITY}"
    alert = Alert(
        source="alertmanager",
        name="AgentHallucination",
        fingerprint=uuid.uuid4().hex[:16],
        labels={"alertname": "AgentHallucination", "agent": agent_id},
        annotations={"summary": summary},
    )
    incident = IncidentInput(
        incident_id=f"incident-ui-{alert.fingerprint}",
        runbook="agent_emergency_stop",
        severity=Severity.P1,
        service="support",
        summary=summary,
        alert=alert,
        target={"agent_id": agent_id},
        policy=policy.incident_policy(),
    )
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, env.client) as activities:
        async with build_worker(env.client, task_queue, activities):
            handle = await env.client.start_workflow(
                "agent_emergency_stop",
                incident,
                id=incident.incident_id,
                task_queue=task_queue,
                start_signal="alert",
                start_signal_args=[alert],
                result_type=IncidentResult,
                # What the intake sets (workers/intake/app.py, through markup.temporal_ui_text).
                static_summary=markup.temporal_ui_text(f"P1 agent_emergency_stop: {summary}", 300),
                static_details=markup.temporal_ui_text(f"Opened by alertmanager alert: {summary}", 4_000),
            )
            try:
                await until_state(handle, "awaiting_approval", settle=False)
                frames = await rendered_frames(ui_port, handle.id, handle.result_run_id or "", "APPROVED")
            finally:
                await handle.terminate("test over")

    assert len(frames) == 3, [frame["text"][:80] for frame in frames]  # summary, details, current details
    for frame in frames:
        # No image, link or emphasis made of the alert's text, in any of the three.
        assert not {"img", "a", "em", "del", "h1", "table"} & set(frame["tags"]), frame["tags"]
        # The UI's renderer curls straight quotes whatever the source says (`"`, `&#34;` and `\\"` alike;
        # seen in 2.54.1): typography, not markup, so the comparison straightens them again.
        frame["visible"] = " ".join(frame["text"].translate(CURLY).split())

    # Static summary and details: exactly the text as typed, or (cut to Temporal's size limit) a prefix of
    # it that still holds the fake approval and the image tag.
    for opening in ("P1 agent_emergency_stop: ", "Opened by alertmanager alert: "):
        [frame] = [f for f in frames if f["visible"].startswith(opening)]
        expected, visible = opening + summary, frame["visible"]
        assert visible == expected or (visible.endswith("…") and expected.startswith(visible[:-1])), visible
        assert FAKE in visible and IMAGE in visible
        assert "strong" not in frame["tags"] and "b" not in frame["tags"]

    # Current details, the brief: every part as typed, and the brief's own heading and bold labels.
    [brief] = [f for f in frames if "Summary:" in f["visible"]]
    for part in (FAKE, IMAGE, PICTURE, LINK, ENTITY):
        assert part in brief["visible"], (part, brief["visible"])
    assert "h2" in brief["tags"] and brief["tags"].count("strong") in (7, 8)  # 8 with "Waiting for"
