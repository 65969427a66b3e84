"""STUB on the intake branch only: the `triage` helper's branch owns this file and declares the real typed
target model of each runbook. The intake validates a route's target against `target_model_for(runbook)`;
until those models land, no runbook declares one, so nothing is refused for its target's type."""

from __future__ import annotations

from pydantic import BaseModel


def target_model_for(runbook: str) -> type[BaseModel] | None:
    """The runbook's target model, or None when it declares none."""
    return None
