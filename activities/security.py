"""The security incident's kill switch: not a system, but the subsystem guardrail's `set_kill_switch` update.

It is sent the way `activities/guardrail.py` asks a guardrail: one update-with-start that starts the
subsystem's guardrail if it is not running. The update id is the step's idempotency key, so a retried
activity is answered by Temporal instead of flipping twice. The runbook's effects on the agent platform
(token revocation, evidence, gold set) are in `activities/agents/`, its post-mortem in
`activities/documents/`.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.client import Client

from activities.guardrail import update_guardrail
from activities.heartbeat import heartbeating
from schemas.guardrail import KILL_SWITCH_UPDATE, GuardrailLimits, GuardrailState, KillSwitchChange
from schemas.security import KillSwitchRequest, KillSwitchResult


class SecurityActivities:
    """Built once in the worker with the Temporal client and queue the guardrails run on."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        limits_for: Callable[[str], GuardrailLimits] = lambda subsystem: GuardrailLimits(),
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._limits_for = limits_for

    @activity.defn(name="security_kill_switch")
    @heartbeating
    async def kill_switch(self, request: KillSwitchRequest) -> KillSwitchResult:
        # The update id is the step's key: a retried activity is answered by Temporal, not flipped twice.
        state = await update_guardrail(
            self._client,
            self._task_queue,
            request.subsystem,
            self._limits_for(request.subsystem),
            KILL_SWITCH_UPDATE,
            KillSwitchChange(
                by=request.by,
                reason=request.reason,
                mode=request.mode,
                enabled=None if request.mode is not None else request.enabled,
            ),
            result_type=GuardrailState,
            refused="the kill switch",
            update_id=request.idempotency_key,
        )
        return KillSwitchResult(
            subsystem=request.subsystem,
            kill_switch=state.kill_switch,
            mode=state.mode,
            changes=state.counters.kill_switch_changes,
        )
