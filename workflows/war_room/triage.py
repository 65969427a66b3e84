"""What the war room's three triage looks found, in the words the brief and the post-mortem use.

Pure: the lookups themselves are effects in `workflow.py`; a lookup that failed arrives here as None and
is said to be unknown, never guessed.
"""

from __future__ import annotations

from schemas.deploys import ExternalStatus, InfraStatus, RecentDeploys


def triage_findings(
    service: str, deploys: RecentDeploys | None, infra: InfraStatus | None, external: ExternalStatus | None
) -> list[str]:
    findings = []
    if deploys is None:
        findings.append("recent deploys unknown (lookup failed)")
    elif deploys.live is None:
        findings.append(f"no recent deploy of {service}")
    else:
        findings.append(f"last deploy {deploys.live.version} at {deploys.live.at}")
    if infra is None:
        findings.append("infrastructure status unknown (lookup failed)")
    else:
        detail = f" ({infra.detail})" if infra.detail else ""
        findings.append(f"infrastructure {infra.status}{detail}")
    if external is None:
        findings.append("external services unknown (lookup failed)")
    elif external.unhealthy:
        findings.append("external trouble: " + ", ".join(external.unhealthy))
    else:
        findings.append("external services up")
    return findings
