"""People and roles in the policy file: every name resolves, or loading stops with the key named."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from schemas.incidents import ChannelKind, PersonChannels
from schemas.severity import Severity
from stanch.policy import AUDIENCE_ROLES, PolicyError, check_roles, load_policy
from stanch.settings import REPO_ROOT
from workflows.registry import WORKFLOWS, roles_used

CHANNELS = """
[channels.alice-telegram]
type = "webhook"
url_setting = "notify_webhook_url"

[channels.team-cockpit]
type = "webhook"
url_setting = "notify_webhook_url"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text + CHANNELS)
    return path


def test_people_and_roles_load_into_the_incident_snapshot(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            '[people.alice]\ninstant = ["alice-telegram"]\ncockpit = ["team-cockpit"]\n'
            '[people.bob]\ncockpit = ["team-cockpit"]\n'
            '[roles.oncall]\npeople = ["alice", "bob"]\n'
            '[[escalation]]\nname = "team-lead"\nnotify = ["oncall", "bob"]\n',
        )
    )
    snapshot = policy.incident_policy()
    assert snapshot.roles == {"oncall": ["alice", "bob"]}
    assert snapshot.people["alice"] == PersonChannels(instant=["alice-telegram"], cockpit=["team-cockpit"])
    assert snapshot.people["bob"].of_kind(ChannelKind.instant) == []
    assert policy.people_of(["oncall", "bob"]) == ["alice", "bob"]


def test_the_old_list_form_of_a_role_means_the_same(tmp_path: Path) -> None:
    policy = load_policy(
        write(tmp_path, '[people.alice]\n[people.bob]\n[roles]\noncall = ["alice", "bob"]\n')
    )
    assert policy.role_people() == {"oncall": ["alice", "bob"]}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[people.alice]\ninstant = ["alice-sms"]\n', r"people\.alice\.instant: unknown channel 'alice-sms'"),
        ('[people.alice]\npager = ["alice-telegram"]\n', r"people\.alice\.pager"),
        ('[roles.oncall]\npeople = ["zed"]\n', r"roles\.oncall\.people: unknown person 'zed'"),
        ("[people.alice]\n[roles.oncall]\npeople = []\n", r"roles\.oncall\.people"),
        ('[people.alice]\n[roles.oncall]\npeople = ["alice"]\nrota = "weekly"\n', r"roles\.oncall\.rota"),
        (
            '[people.alice]\n[[escalation]]\nname = "team-lead"\nnotify = ["lead"]\n',
            r"escalation\.0\.notify: unknown person or role 'lead'",
        ),
        (
            '[people.lead]\n[roles.lead]\npeople = ["lead"]\n',
            r"people\.lead: a person may not share a name with a role",
        ),
        ('[notify.kinds]\nP0 = ["sms"]\n', r"notify"),
    ],
    ids=[
        "unknown-channel",
        "unknown-kind",
        "unknown-person",
        "empty-role",
        "unknown-role-key",
        "unknown-level-target",
        "person-named-like-a-role",
        "unknown-kind-for-a-priority",
    ],
)
def test_a_name_that_resolves_to_nothing_stops_loading_naming_the_key(
    tmp_path: Path, text: str, error: str
) -> None:
    if text.startswith("[notify"):
        text = (
            '[notify]\nP0 = ["team-cockpit"]\nP1 = ["team-cockpit"]\nP2 = ["team-cockpit"]\n'
            'P3 = ["team-cockpit"]\ncustomer = ["team-cockpit"]\nescalation = ["team-cockpit"]\n' + text
        )
    with pytest.raises(PolicyError, match=error):
        load_policy(write(tmp_path, text))


def test_kinds_by_priority_default_to_seed_004() -> None:
    routing = load_policy(REPO_ROOT / "config" / "stanch.toml").notify
    assert routing is not None
    assert [routing.kinds.for_severity(severity) for severity in Severity] == [
        [ChannelKind.instant],
        [ChannelKind.cockpit, ChannelKind.instant],
        [ChannelKind.cockpit],
        [ChannelKind.cockpit],
    ]


def test_the_shipped_policy_has_every_role_a_runbook_uses_and_no_lone_approver() -> None:
    policy = load_policy(REPO_ROOT / "config" / "stanch.toml")
    check_roles(policy, roles_used())
    roles = policy.role_people()
    # The seeds' CEO decisions have their own role; no approving role, and no escalation level, is one person.
    assert "owner" in roles
    for role in ("oncall", "lead", "owner"):
        assert len(roles[role]) >= 2, role
    for level in policy.escalation:
        assert len(policy.people_of(level.notify)) >= 2, level.name


def test_a_missing_role_names_the_runbook_and_the_role(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, '[people.alice]\n[roles.oncall]\npeople = ["alice"]\n'))
    with pytest.raises(PolicyError) as error:
        check_roles(policy, {"agent_onboarding": ("owner", "oncall")})
    assert str(error.value) == (
        "runbook agent_onboarding uses role 'owner', which [roles] does not define "
        "(add [roles.owner] people = [...])"
    )


def _literal_roles(cls: type) -> set[str]:
    """The roles a runbook's own source names: `allowed_roles=[...]`, list constants handed to it, and the
    audiences of `notify(channel="...")` that are roles."""
    module = __import__(cls.__module__, fromlist=["_"])
    tree = ast.parse(Path(module.__file__ or "").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("allowed_roles", "channel"):
            value = node.value
            strings = value.elts if isinstance(value, ast.List) else [value]
            for item in strings:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    found.add(
                        AUDIENCE_ROLES.get(item.value, item.value) if node.arg == "channel" else item.value
                    )
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(name.endswith(("ROLES", "APPROVERS")) for name in names):
                found |= {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
    # Not roles: the customer's chat, and the old roles kept only for runs recorded before `owner`.
    return found - {"customer"}


@pytest.mark.parametrize("cls", WORKFLOWS, ids=lambda cls: cls.__name__)
def test_each_runbook_declares_every_role_its_code_names(cls: type) -> None:
    declared = set(getattr(cls, "uses_roles", ()))
    named = _literal_roles(cls)
    if "OWNER_ROLES_BEFORE" in Path(__import__(cls.__module__, fromlist=["_"]).__file__ or "").read_text():
        named -= {"lead"}  # asked only of incidents opened under a policy without an owner
    assert named <= declared, f"{cls.__name__} names {sorted(named - declared)} but does not declare them"
