"""The post-incident learning and its report, without a server: each refusal names its field, every item
becomes a story, and the report's Markdown shows alert and learning text exactly as typed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.briefs import Brief, TimelineEntry
from schemas.learning import Learning, PostmortemDraft, PostmortemReport

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DRAFT = PostmortemDraft(
    root_cause="Most likely the latest deploy.",
    impact="checkout affected for 20 min",
    response="3 actions and decisions; resolved by qa-gate.",
    prevention=["Add a regression test for: checkout 500"],
)


def test_a_good_learning_has_no_problems_and_asks_for_a_story_per_item() -> None:
    learning = Learning(
        by="carol",
        root_cause="1.1.0 dropped the cart index",
        impact="most users for 20 minutes",
        prevention="Canary the checkout deploys",  # one step typed as a string
        alert_changes=["Page on 5xx above 2%"],
        automation=["Roll back on a failed canary"],
    )
    assert learning.problems() == []
    assert learning.stories() == [
        "Canary the checkout deploys",
        "Alerting: Page on 5xx above 2%",
        "Automation: Roll back on a failed canary",
    ]


def test_each_problem_names_its_field() -> None:
    bad = Learning.model_validate(
        {
            "by": "",
            "root_cause": "   ",
            "impact": "x" * 10_001,
            "prevention": [],
            "alert_changes": ["ok", ""],
            "automation": ["y" * 301],
            "rootcause": "a typo",
        }
    )
    problems = bad.problems()
    assert problems[0].startswith("rootcause: unknown field (known: by, root_cause, impact")
    assert "by: empty; say who writes this learning" in problems
    assert "root_cause: empty; say what failed and why" in problems
    assert "impact: 10001 characters, at most 10000" in problems
    assert "prevention: at least one step that stops this coming back" in problems
    assert "alert_changes[1]: empty" in problems
    assert "automation[0]: 301 characters, at most 300" in problems
    assert (
        "prevention: 21 items, at most 20"
        in Learning(
            by="a", root_cause="b", impact="c", prevention=[f"step {n}" for n in range(21)]
        ).problems()
    )


def report(learning: Learning | None) -> PostmortemReport:
    hostile = "<img src=x> **APPROVED** [x](http://evil)"
    return PostmortemReport(
        incident_id="incident-checkout",
        runbook="war_room",
        severity="P1",
        service="checkout",
        summary=f"checkout down {hostile}",
        opened_at=AT,
        resolved_at=AT + timedelta(minutes=20),
        resolved_by="qa-gate",
        resolution_note="QA passed after rollback",
        automatic_actions=["10:01:00 Recent deploys of checkout"],
        timeline=[TimelineEntry(at=AT, kind="alert", text=f"ProductionDown firing: {hostile}", actor="am")],
        learning=learning,
        draft=DRAFT,
        stories=learning.stories() if learning else DRAFT.prevention,
        written_at=AT + timedelta(hours=2),
    )


def test_the_report_says_whose_learning_it_is_and_keeps_what_the_runbook_saw() -> None:
    learning = Learning(
        by="carol", root_cause="the cart index <b>", impact="most users", prevention=["Canary deploys"]
    )
    markdown = report(learning).as_markdown()
    assert markdown.startswith("# Post-incident report: P1 checkout\\: checkout down")
    assert "**Learning:** by carol" in markdown and "20 min); resolved by qa\\-gate" in markdown
    assert "## What the runbook saw" in markdown and "Add a regression test for\\: checkout 500" in markdown
    assert "- Canary deploys" in markdown and "## Timeline" in markdown
    assert report(learning).root_cause == "the cart index <b>"  # the structured field stays as sent


def test_without_a_learning_the_report_is_the_draft_and_says_so() -> None:
    plain = report(None)
    assert plain.root_cause == DRAFT.root_cause and plain.impact == DRAFT.impact
    markdown = plain.as_markdown()
    assert "none was sent within 48 hours" in markdown and "What the runbook saw" not in markdown


def test_alert_and_learning_text_is_escaped_in_the_markdown() -> None:
    learning = Learning(by="@everyone", root_cause="**root**", impact="<script>", prevention=["[a](b)"])
    markdown = report(learning).as_markdown()
    # Each markup character is backslash-escaped: it shows as typed instead of rendering.
    assert "\\<img src=x\\>" in markdown and "\\<script\\>" in markdown
    assert "\\*\\*APPROVED\\*\\*" in markdown and "\\*\\*root\\*\\*" in markdown
    assert "\\[a\\]\\(b\\)" in markdown and "**APPROVED**" not in markdown


def test_the_brief_links_the_postmortem_in_markdown_and_text() -> None:
    from schemas.briefs import PostmortemLink

    brief = Brief(
        incident_id="incident-checkout",
        runbook="war_room",
        severity="P1",
        service="checkout",
        summary="down",
        started_at=AT,
        last_update_at=AT,
        state="resolved",
        postmortem=PostmortemLink(workflow_id="postmortem-incident-checkout", report="pm-3"),
    )
    assert "**Post-mortem:** `postmortem\\-incident\\-checkout`, report at pm\\-3" in brief.as_markdown()
    assert "Post-mortem: postmortem-incident-checkout, report at pm-3" in brief.as_text()
