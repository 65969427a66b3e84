"""The on-call console (issue 14) in a real headless Chromium, on the real dev stack (every part its own
process, the console among them): what seed 003's person on call does at 3 a.m.

alice (on-call) signs in and keeps "waiting for me" open; the incident an alert then opens appears in it
without a reload (and leaves it once decided). She opens it, reads its brief, sees a change made elsewhere
appear without a reload, approves the rollback; the sandbox shows the agent rolled back and the timeline
says "alice, via console". erin (owner, no role that decides a rollback) sees no
approve button; her hand-made POST of the form is 403 and the incident itself audits the attempt; a POST
without the CSRF token is 403. A new incident from the form opens the runbook, audited as alice's. On a
private stack, the health page shows Postgres down while it is stopped. Every page is checked at a phone's
390 px (no sideways scroll) and by keyboard (each control reached by Tab, with a visible focus). Screenshots
of each page, wide and at 390 px, go to the pytest basetemp (`console-screenshots/`), never into the
repository.

Needs Debian's `chromium` and PyPI's `playwright` (no browser download); skipped without them, except under
CI=true, where a missing Chromium fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.briefs import Brief, Timeline
from stanch.audit_store import read_rows
from stanch.decisions import pick_question
from stanch.ops.devstack import DevStack, settings_on_free_ports
from stanch.ops.samples import sample
from stanch.settings import REPO_ROOT, Settings
from stanch.temporal_client import connect
from stanch.tls import default_tls_context
from tests.helpers import chat_messages, http_client, new_agent
from tests.stack import (
    agent,
    brief_state,
    eventually,
    fire,
    post_alert,
    result_of,
    temporal_signal,
    terminate_running,
)

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("Debian's chromium is not installed: run .ci/system-packages")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]

# Playwright's sync API runs an event loop in the test's thread; the stack helpers that call asyncio.run
# (Temporal queries) run on this thread instead.
_OFF_LOOP = ThreadPoolExecutor(max_workers=1)


def off_loop(fn: Any, *args: Any) -> Any:
    return _OFF_LOOP.submit(fn, *args).result()


def state_of(settings: Settings, workflow_id: str) -> str:
    return str(off_loop(brief_state, settings, workflow_id))


PASSWORD = "stanch-demo"  # tests/policy.toml's demo accounts, as config/dev.toml's
CONSOLE_POLICY = REPO_ROOT / "tests" / "policy.toml"
WAIT_MS = 20_000  # bounded waits in the browser; the live poll is every 2 s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "console-screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def console_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.console_port}"


PHONE = {"width": 390, "height": 844}
# What a person can act on: every control and link a page shows (hidden fields are not for people).
CONTROLS = "a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex='-1'])"
# What the walk reads at each Tab: which control has the focus, and whether its outline shows it.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const style = getComputedStyle(e);
  return {key: controlKey(e), outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2};
}"""
CONTROL_KEY = """() => { window.controlKey = e => e.id || [e.tagName, e.getAttribute("name") || "", e.getAttribute("value") || "",
  e.getAttribute("href") || "", e.textContent.trim()].join("|"); }"""


def usable_at_a_phones_width_and_by_keyboard(page: Any, shot: Path) -> None:
    """At 390 px the page does not scroll sideways (wide tables scroll inside their own box) and is kept as a
    screenshot; every control it shows is reached by Tab, each with a visible focus outline."""
    viewport = page.viewport_size
    page.set_viewport_size(PHONE)
    try:
        page.screenshot(path=str(shot), full_page=True)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{shot.stem}: {width} px wide at a phone's {PHONE['width']} px"
        page.evaluate(CONTROL_KEY)
        wanted = set(
            page.evaluate(
                f"() => [...document.querySelectorAll({CONTROLS!r})]"
                ".filter(e => e.getClientRects().length).map(controlKey)"
            )
        )
        reached: set[str] = set()
        unseen: set[str] = set()
        # Twice round, wherever the focus starts, in case it starts part-way down.
        for _ in range(2 * len(wanted) + 3):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            if focused is None:
                continue
            reached.add(focused["key"])
            if not focused["outline"]:
                unseen.add(focused["key"])
        assert wanted <= reached, f"{shot.stem}: not reached by Tab: {sorted(wanted - reached)}"
        assert not unseen, f"{shot.stem}: focus not visible on {sorted(unseen)}"
    finally:
        page.set_viewport_size(viewport)


def signed_in_page(browser: Any, settings: Settings, name: str, shot: Path | None = None) -> Any:
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.goto(f"{console_url(settings)}/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_url(f"{console_url(settings)}/")
    return page


def signed_in_http(settings: Settings, name: str) -> tuple[httpx.Client, str]:
    """A person's session as a script holds it (no browser): the client with its cookie, and its CSRF token."""
    http = httpx.Client(
        base_url=console_url(settings), timeout=30, follow_redirects=False, verify=default_tls_context()
    )
    token = csrf_of(http.get("/login").text)
    response = http.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303, response.text
    return http, csrf_of(http.get("/").text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def open_question_gate(settings: Settings, workflow_id: str) -> str:
    async def query() -> str:
        brief = (
            await (await connect(settings)).get_workflow_handle(workflow_id).query("brief", result_type=Brief)
        )
        question = pick_question(brief, "rollback")
        assert question is not None
        return question.gate

    return str(off_loop(asyncio.run, query()))


def refused_rows(settings: Settings, workflow_id: str, by: str) -> list[Any]:
    return [
        row
        for row in read_rows(settings.database_url, workflow_id)
        if row.step_key.startswith("attempt-refused-") and row.actor == by
    ]


def test_alice_approves_the_rollback_from_the_console_and_erin_without_the_role_cannot(
    stack: Settings, browser: Any, shots: Path
) -> None:
    # alice (on-call) has "waiting for me" open before anything fires: the list refreshes by itself.
    alice = signed_in_page(browser, stack, "alice")
    alice.goto(f"{console_url(stack)}/?mine=true")
    agent_id = new_agent(stack.platform_url, ["v1", "v2", "v3"])
    workflow_id = fire(stack, "agent-hallucination", agent_id)
    opened: list[str] = [workflow_id]
    try:
        # The new incident's row appears without a reload, through the page's own filter (it shows only
        # once the incident waits for alice), within a bounded wait.
        row = alice.locator("#incidents tr", has_text=workflow_id)
        playwright_sync.expect(row).to_contain_text("awaiting_approval", timeout=WAIT_MS)
        assert alice.locator("h1").inner_text().startswith("Waiting for me")
        assert alice.locator("input[name=mine]").is_checked()
        eventually(lambda: state_of(stack, workflow_id) == "awaiting_approval", "the approval request")
        alice.screenshot(path=str(shots / "incidents.png"), full_page=True)
        usable_at_a_phones_width_and_by_keyboard(alice, shots / "incidents-phone.png")
        # A second tab keeps the list open while alice works on the incident: it follows what she does.
        board = alice.context.new_page()
        board.goto(f"{console_url(stack)}/?mine=true")
        playwright_sync.expect(board.locator("#incidents tr", has_text=workflow_id)).to_have_count(1)
        row.locator("a").click()
        alice.wait_for_selector("#brief-h")
        sections = alice.locator("h2").all_inner_texts()
        assert sections[:2] == ["Decision brief", "Timeline"], sections
        assert "roll" in alice.inner_text("#recommendation").lower()
        assert "audit log intact" in alice.inner_text("#chain")
        alice.screenshot(path=str(shots / "incident.png"), full_page=True)
        usable_at_a_phones_width_and_by_keyboard(alice, shots / "incident-phone.png")

        # erin (owner) sees the same incident with no approve button ...
        erin = signed_in_page(browser, stack, "erin")
        erin.goto(f"{console_url(stack)}/incidents/{workflow_id}")
        erin.wait_for_selector("#brief-h")
        assert erin.locator("button", has_text="Approve").count() == 0
        assert alice.locator("button", has_text="Approve rollback").count() == 1
        # ... and the form posted by hand with her session and its CSRF token is refused, and audited by
        # the incident itself (its workflow writes the row, so the chain keeps one writer).
        gate = open_question_gate(stack, workflow_id)
        http, token = signed_in_http(stack, "erin")
        form = {"gate": gate, "verdict": "approve", "confirmed": "yes"}
        refused = http.post(f"/incidents/{workflow_id}/decide", data={**form, "csrf_token": token})
        assert refused.status_code == 403, refused.text
        rows = eventually(lambda: refused_rows(stack, workflow_id, "erin"), "the refused attempt's audit row")
        assert rows[0].action == "approve rollback" and rows[0].outcome == "refused"
        assert rows[0].details == {"via": "console"}
        # Without the CSRF token even alice's own POST is refused, and nothing is decided.
        alice_http, alice_token = signed_in_http(stack, "alice")
        no_token = alice_http.post(f"/incidents/{workflow_id}/decide", data=form)
        assert no_token.status_code == 403
        assert state_of(stack, workflow_id) == "awaiting_approval"
        # A form over another version of the question (its digest) is not signed or sent: the console
        # signs only what the person read.
        stale = alice_http.post(
            f"/incidents/{workflow_id}/decide", data={**form, "digest": "0" * 64, "csrf_token": alice_token}
        )
        assert stale.status_code == 303
        assert "changed since you read it" in alice_http.get(stale.headers["location"]).text
        assert state_of(stack, workflow_id) == "awaiting_approval"

        # Live: bob acknowledges from a terminal; alice's open page shows it without a reload.
        temporal_signal(stack, workflow_id, "acknowledge", {"by": "bob"})
        alice.wait_for_selector("#timeline >> text=acknowledged by bob", timeout=WAIT_MS)
        # The refused attempt is in the timeline too, and in the audit rows the page shows.
        alice.wait_for_selector("#audit >> text=attempt-refused-1", timeout=WAIT_MS)

        # alice approves: the console asks first, then signs for her (via console) and sends it.
        alice.click("button:has-text('Approve rollback')")
        alice.wait_for_selector("text=Are you sure?")
        alice.screenshot(path=str(shots / "confirm.png"), full_page=True)
        usable_at_a_phones_width_and_by_keyboard(alice, shots / "confirm-phone.png")
        alice.click("button:has-text('Yes, do it')")
        flash = alice.wait_for_selector(".flash", timeout=WAIT_MS).inner_text()
        assert "approved" in flash, flash
        eventually(lambda: agent(stack, agent_id)["version"] == "v2", "the agent rolled back at the sandbox")
        # The timeline names who and through what: "alice, via console (signed, key SHA256:…) approved rollback".
        alice.wait_for_selector("#timeline >> text=/alice, via console .*approved rollback/", timeout=WAIT_MS)
        eventually(lambda: state_of(stack, workflow_id) == "rolled_back", "the incident closing rolled back")
        # The list in the other tab drops it by itself: it no longer waits for alice.
        playwright_sync.expect(board.locator("#incidents tr", has_text=workflow_id)).to_have_count(
            0, timeout=WAIT_MS
        )
        board.close()

        # The agent misbehaves again: the same incident id opens a new run, and its page shows that run's
        # audit rows alone (the first run's decision and rollback stay in the first run's chain).
        assert fire(stack, "agent-hallucination", agent_id) == workflow_id
        eventually(lambda: state_of(stack, workflow_id) == "awaiting_approval", "the second run asking")
        # alice's page is still open on the closed run: its live poll sees a new question and reloads the
        # page by itself (a goto here would race that reload), so the new run's buttons appear unasked.
        alice.wait_for_selector("button:has-text('Approve rollback')", timeout=WAIT_MS)
        alice.wait_for_selector("#audit >> text=gate1-requested", timeout=WAIT_MS)
        steps = [cells[2] for cells in audit_table(alice)]
        assert "pause" in steps and "gate1-decision" not in steps and "rollback" not in steps, steps

        # A new incident from the form opens the runbook through the intake's routing, audited as alice's.
        other = new_agent(stack.platform_url, ["v1", "v2"])
        alice.goto(f"{console_url(stack)}/new")
        alice.select_option("#runbook-choice", "agent_emergency_stop")
        alice.wait_for_selector("#target-agent_id")
        alice.fill("#target-agent_id", other)
        alice.select_option("#severity", "P2")
        alice.fill("#summary", f"{other} answers in the wrong language")
        alice.screenshot(path=str(shots / "new.png"), full_page=True)
        usable_at_a_phones_width_and_by_keyboard(alice, shots / "new-phone.png")
        alice.click("button:has-text('Open the incident')")
        alice.wait_for_selector("#brief-h", timeout=WAIT_MS)
        new_id = alice.url.rsplit("/", 1)[-1]
        opened.append(new_id)
        assert new_id.startswith("incident-agent-hallucination-")
        eventually(lambda: state_of(stack, new_id) == "awaiting_approval", "the hand-opened runbook asking")
        assert agent(stack, other)["state"] == "paused"  # the runbook itself acted: it paused the agent
        opened_by = eventually(
            lambda: [r for r in read_rows(stack.database_url, new_id) if r.step_key == "opened-by-hand"],
            "the audit row of who opened it",
        )
        assert opened_by[0].actor == "alice" and opened_by[0].details["via"] == "console"

        # A fresh page: the incident page behind reloads itself when its buttons change, which would abort
        # a navigation away from it half-way.
        alice.close()
        alice = signed_in_page(browser, stack, "alice")
        alice.goto(f"{console_url(stack)}/health")
        assert "ok" in alice.locator("#check-Postgres").inner_text()
        alice.screenshot(path=str(shots / "health.png"), full_page=True)
        usable_at_a_phones_width_and_by_keyboard(alice, shots / "health-phone.png")
    finally:
        off_loop(terminate_running, stack, opened)


def audit_table(page: Any) -> list[list[str]]:
    """The incident page's audit rows, cell by cell."""
    return [row.locator("td").all_inner_texts() for row in page.locator("#audit tbody tr").all()]


def timeline_texts(settings: Settings, workflow_id: str) -> list[str]:
    async def query() -> list[str]:
        handle = (await connect(settings)).get_workflow_handle(workflow_id)
        return [entry.text for entry in (await handle.query("timeline", result_type=Timeline)).entries]

    return list(off_loop(asyncio.run, query()))


def flash_after(http: httpx.Client, response: httpx.Response) -> str:
    """The message the page a form redirects to shows (the flash the person reads)."""
    assert response.status_code == 303, response.text
    found = re.search(r'class="flash[^"]*"[^>]*>(.*?)<', http.get(response.headers["location"]).text, re.S)
    assert found, "no flash on the page the form led to"
    return found.group(1).strip()


def test_the_responders_forms_acknowledge_escalate_resolve_and_hand_over_reach_the_incident(
    stack: Settings,
) -> None:
    """The forms besides approve/reject, posted as the browser posts them (session cookie + CSRF token): each
    reaches the workflow, which records it under the signed-in person; resolve asks first, then signs."""
    agent_id = new_agent(stack.platform_url, ["v1", "v2"])
    workflow_id = fire(stack, "agent-hallucination", agent_id)
    opened = [workflow_id]
    try:
        eventually(lambda: state_of(stack, workflow_id) == "awaiting_approval", "the approval request")
        http, token = signed_in_http(stack, "alice")

        acked = http.post(f"/incidents/{workflow_id}/acknowledge", data={"csrf_token": token})
        assert flash_after(http, acked) == "Acknowledged by alice."
        eventually(
            lambda: "acknowledged by alice" in timeline_texts(stack, workflow_id), "the acknowledgement"
        )

        reason = "customers are still getting wrong answers"
        escalated = http.post(
            f"/incidents/{workflow_id}/escalate", data={"csrf_token": token, "reason": reason}
        )
        assert flash_after(http, escalated) == "Escalation requested by alice."
        eventually(
            lambda: f"alice asks to escalate now: {reason}" in timeline_texts(stack, workflow_id),
            "the escalation request in the timeline",
        )
        eventually(lambda: state_of(stack, workflow_id) == "escalated", "the incident escalated now")

        # Resolve withdraws the open question: the console asks first, and sends nothing until confirmed.
        form = {"csrf_token": token, "fixed": "prompt reverted by hand", "learned": "pin prompts"}
        asked = http.post(f"/incidents/{workflow_id}/resolve", data=form)
        assert asked.status_code == 200 and "Are you sure?" in asked.text
        assert state_of(stack, workflow_id) == "escalated"
        done = http.post(f"/incidents/{workflow_id}/resolve", data={**form, "confirmed": "yes"})
        assert flash_after(http, done) == "Marked resolved by alice, via console."
        assert result_of_off_loop(stack, workflow_id).final_state == "resolved"
        resolved = [
            text for text in timeline_texts(stack, workflow_id) if text.startswith("marked resolved by")
        ]
        assert resolved and "alice, via console (signed" in resolved[0], resolved
        assert "prompt reverted by hand — learned: pin prompts" in resolved[0]
        # A resolved P1 opens its post-mortem: the incident page links its post-incident report, which opens.
        report = f"/incidents/postmortem-{workflow_id}"
        assert f'href="{report}">post-incident report</a>' in http.get(f"/incidents/{workflow_id}").text
        postmortem_page = http.get(report)
        assert postmortem_page.status_code == 200
        assert f"Post-incident learning for {workflow_id}" in postmortem_page.text

        # A triage incident (an alert without its `agent` label) handed to a runbook from the console. A
        # hand-over sends its cause's later alerts to the runbook's incident (workflows/triage.py), so this
        # test takes a cause no other test on the shared stack fires: a termination request without its agent.
        other = new_agent(stack.platform_url, ["v1", "v2"])
        body = sample("agent-termination", agent=other)
        for labels in (body["alerts"][0]["labels"], body["commonLabels"]):
            labels.pop("agent", None)
        [entry] = post_alert(stack, body).json()["incidents"]
        triage_id = entry["workflow_id"]
        opened.append(triage_id)
        assert entry["action"] == "triage"
        eventually(lambda: state_of(stack, triage_id) == "awaiting_triage", "the triage incident waiting")
        hand = {"csrf_token": token, "runbook": "agent_emergency_stop", "target.agent_id": other}
        asked = http.post(f"/incidents/{triage_id}/handover", data=hand)
        assert asked.status_code == 200 and f"Hand {triage_id} over to agent_emergency_stop" in asked.text
        handed = http.post(f"/incidents/{triage_id}/handover", data={**hand, "confirmed": "yes"})
        assert flash_after(http, handed) == "Handed over to agent_emergency_stop by alice, via console."
        child_id = handed.headers["location"].removeprefix("/incidents/").split("?")[0]
        opened.append(child_id)
        eventually(
            lambda: agent(stack, other)["state"] == "paused", "the runbook it started pausing the agent"
        )
        assert result_of_off_loop(stack, triage_id).final_state == "handed_over"
    finally:
        off_loop(terminate_running, stack, opened)


def result_of_off_loop(settings: Settings, workflow_id: str) -> Any:
    return off_loop(result_of, settings, workflow_id)


def test_the_health_page_shows_postgres_down_while_it_is_stopped(
    tmp_path_factory: pytest.TempPathFactory, browser: Any, shots: Path
) -> None:
    # It stops a part, so it runs on a stack of its own (only what the health page needs), never the shared one.
    settings = settings_on_free_ports(tmp_path_factory.mktemp("console-health")).model_copy(
        update={"config": CONSOLE_POLICY}
    )
    with DevStack(settings, processes=("console",), log=lambda line: None) as own:
        login = browser.new_page()
        login.goto(f"{console_url(own.settings)}/login")
        usable_at_a_phones_width_and_by_keyboard(login, shots / "login-phone.png")
        login.close()
        page = signed_in_page(browser, own.settings, "alice", shots / "login.png")
        page.goto(f"{console_url(own.settings)}/health")
        assert "ok" in page.locator("#check-Postgres").inner_text()
        with own.outage("postgres"):
            page.goto(f"{console_url(own.settings)}/health")
            postgres_row = page.locator("#check-Postgres").inner_text()
            assert "DOWN" in postgres_row, postgres_row
            assert "not verified" in page.locator("#check-audit-chain").inner_text()
            page.screenshot(path=str(shots / "health-postgres-down.png"), full_page=True)
            health = http_client.get(f"{console_url(own.settings)}/api/health", timeout=30).json()
            assert not health["ok"]
            assert {c["name"]: c["ok"] for c in health["checks"]}["Postgres"] is False
        # Back: the next look says so.
        eventually(
            lambda: {
                c["name"]: c["ok"]
                for c in http_client.get(f"{console_url(own.settings)}/api/health", timeout=30).json()[
                    "checks"
                ]
            }["Postgres"],
            "Postgres back on the health page",
        )


def test_a_customer_message_draft_is_edited_and_sent_from_the_console(
    tmp_path_factory: pytest.TempPathFactory, browser: Any, shots: Path
) -> None:
    """Under `customer_messages = "review"` the customer's message waits for a person: alice reads the draft
    on the incident page, rewrites it, and sends it; the customer gets her text, and the audit says she did."""
    home = tmp_path_factory.mktemp("console-review")
    policy = home / "review.toml"
    policy.write_text(f'extends = "{CONSOLE_POLICY}"\ncustomer_messages = "review"\n')
    # A policy of its own, so a stack of its own: the shared stack's customer messages go out at once.
    settings = settings_on_free_ports(home).model_copy(update={"config": policy})
    with DevStack(settings, log=lambda line: None) as own:
        settings = own.settings
        agent_id = new_agent(settings.platform_url, ["v1", "v2"])
        workflow_id = fire(settings, "agent-hallucination", agent_id)
        alice = signed_in_page(browser, settings, "alice")
        alice.goto(f"{console_url(settings)}/incidents/{workflow_id}")
        # The review may open after the page did: the page reloads itself when its actions change.
        draft = alice.locator("textarea[name=text]")
        playwright_sync.expect(draft).to_have_count(1, timeout=WAIT_MS)
        assert draft.input_value(), "the draft is shown to edit"
        assert not [
            m for m in chat_messages(settings.platform_url, workflow_id) if m["title"] == "Assistant paused"
        ]
        edited = f"We paused the assistant {agent_id} while we check it; a person answers you meanwhile."
        draft.fill(edited)
        alice.screenshot(path=str(shots / "review.png"), full_page=True)
        alice.click("button:has-text('Send this customer message')")
        flash = alice.wait_for_selector(".flash", timeout=WAIT_MS).inner_text()
        assert "alice, via console" in flash, flash
        sent = eventually(
            lambda: [
                m
                for m in chat_messages(settings.platform_url, workflow_id)
                if m["title"] == "Assistant paused"
            ],
            "the customer message sent",
        )
        assert [m["text"] for m in sent] == [edited]
        decided = eventually(
            lambda: [
                row
                for row in read_rows(settings.database_url, workflow_id)
                if row.step_key.endswith("-review-decision")
            ],
            "the review's decision row",
        )
        assert decided[0].actor == "alice", decided[0]
        off_loop(terminate_running, settings, [workflow_id])
