"""Sample alerts for `stanch fire`: real Alertmanager v4 bodies, one per scenario of the installed packs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stanch.packs import Sample, installed_packs


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
    """The Alertmanager body for one scenario; `{agent}` in a label or the summary is the chosen agent."""
    known = samples()
    if name not in known:
        raise KeyError(name)
    alertname, summary, labels = known[name]
    filled = {key: value.format(agent=agent) for key, value in labels.items()}
    return alertmanager_body(alertname, filled, summary.format(agent=agent), fingerprint or agent)


def samples() -> dict[str, Sample]:
    """Every installed pack's samples, by scenario name (Stanch's own: workflows/samples.py)."""
    return installed_packs().samples


def __getattr__(name: str) -> Any:
    # `SAMPLES` for the callers that read it as a constant; loaded on first use, not at import, so that
    # importing alertmanager_body does not load every pack.
    if name == "SAMPLES":
        return samples()
    raise AttributeError(name)
