"""A minimal runbook that only asks its subsystem's guardrail, one step after another, the way a real
runbook does (the `ask_guardrail` step, the activity, update-with-start)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.guardrail import GuardrailLimits, Risk, Verdict
    from workflows.steps.guardrail import action_check, ask_guardrail


class ProbeAsk(BaseModel):
    step: str
    kind: str = "restart"
    risk: Risk = Risk.high
    reason: str = "memory above the high watermark"
    destructive: bool = False


class GuardrailProbeInput(BaseModel):
    subsystem: str
    limits: GuardrailLimits = Field(default_factory=GuardrailLimits)
    asks: list[ProbeAsk]


class GuardrailProbeResult(BaseModel):
    verdicts: list[Verdict]


@workflow.defn(name="guardrail_probe")
class GuardrailProbe:
    @workflow.run
    async def run(self, params: GuardrailProbeInput) -> GuardrailProbeResult:
        verdicts = []
        for ask in params.asks:
            check = action_check(
                ask.step,
                action=f"{ask.kind} {params.subsystem}",
                kind=ask.kind,
                risk=ask.risk,
                reason=ask.reason,
                destructive=ask.destructive,
            )
            verdicts.append(await ask_guardrail(params.subsystem, check, params.limits))
        return GuardrailProbeResult(verdicts=verdicts)
