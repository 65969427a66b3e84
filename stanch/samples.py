"""Sample alerts for `stanch fire`: real Alertmanager v4 bodies, one per demo scenario."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


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


def sample(name: str, *, agent: str = "support-bot", fingerprint: str | None = None) -> dict[str, Any]:
    if name not in SAMPLES:
        raise KeyError(name)
    alertname, summary = SAMPLES[name]
    labels = {"agent": agent, "service": "support", "customer": "acme", "severity": "critical"}
    return alertmanager_body(alertname, labels, summary.format(agent=agent), fingerprint or agent)


SAMPLES: dict[str, tuple[str, str]] = {
    "agent-hallucination": (
        "AgentHallucination",
        "Agent {agent} promised customers a 90% discount and left its persona",
    ),
}
