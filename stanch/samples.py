"""Sample alerts for `stanch fire`: real Alertmanager v4 bodies, one per demo scenario."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple


def alertmanager_body(
    alertname: str, labels: dict[str, str], summary: str, fingerprint: str
) -> dict[str, Any]:
    all_labels = {"alertname": alertname, **labels}
    return {
        "receiver": "stanch",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": all_labels,
                "annotations": {"summary": summary},
                "startsAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint,
            }
        ],
        "groupLabels": {"alertname": alertname},
        "commonLabels": all_labels,
        "commonAnnotations": {"summary": summary},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
    }


class Sample(NamedTuple):
    alertname: str
    summary: str
    labels: dict[str, str]


def sample(name: str, *, agent: str = "support-bot", fingerprint: str | None = None) -> dict[str, Any]:
    """The Alertmanager body for one scenario; `{agent}` in a label or the summary is the chosen agent."""
    if name not in SAMPLES:
        raise KeyError(name)
    alertname, summary, labels = SAMPLES[name]
    filled = {key: value.format(agent=agent) for key, value in labels.items()}
    return alertmanager_body(alertname, filled, summary.format(agent=agent), fingerprint or agent)


# One entry per scenario `stanch fire` knows; each must match a route in config/stanch.toml.
SAMPLES: dict[str, Sample] = {
    "agent-hallucination": Sample(
        "AgentHallucination",
        "Agent {agent} promised customers a 90% discount and left its persona",
        {"agent": "{agent}", "service": "support", "customer": "acme", "severity": "critical"},
    ),
}
