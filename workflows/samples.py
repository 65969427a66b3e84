"""Stanch's own sample alerts, one per demo scenario: the samples of its pack (workflows/pack.py), which
`stanch fire` sends as real Alertmanager bodies (stanch/ops/samples.py). Plain data, no I/O."""

from __future__ import annotations

from stanch.packs import Sample

# One entry per scenario `stanch fire` knows; each must match a route in config/stanch.toml.
SAMPLES: dict[str, Sample] = {
    "agent-hallucination": Sample(
        "AgentHallucination",
        "Agent {agent} promised customers a 90% discount and left its persona",
        {"agent": "{agent}", "service": "support", "customer": "acme", "severity": "critical"},
    ),
    "agent-onboarding": Sample(
        "AgentOnboardingRequested",
        "We need an agent for {agent}: answer customer questions about invoices",
        {
            "agent": "{agent}",
            "service": "agents",
            "role": "billing-assistant",
            "tools": "kb:read,tickets:write",
        },
    ),
    "agent-upgrade": Sample(
        "AgentUpgradeRequested",
        "Upgrade agent {agent} to v4 (new summarisation skill)",
        {"agent": "{agent}", "service": "agents", "version": "v4"},
    ),
    "agent-termination": Sample(
        "AgentTerminationRequested",
        "Agent {agent} has been replaced; retire it",
        {"agent": "{agent}", "service": "agents"},
    ),
    "escalate-to-human": Sample(
        "AgentNeedsHuman",
        "Agent {agent} scored 62% on a refund answer and wants a human to decide",
        {
            "agent": "{agent}",
            "service": "agents",
            "severity": "warning",
            "trigger": "low_quality",
            "quality_score": "0.62",
            "priority": "P1",
            "options": "human-takeover,let-agent-continue,pause-agent",
            "recommendation": "human-takeover",
        },
    ),
    "security-p0": Sample(
        "AgentPromptInjection",
        "Agent {agent} followed instructions hidden in a customer's attachment",
        {"agent": "{agent}", "service": "agents", "severity": "critical", "kind": "prompt_injection"},
    ),
    # The three channel scenarios act on the sandbox's seeded demo channel `whatsapp-demo`.
    "channel-down": Sample(
        "WhatsAppChannelDown",
        "Customers write to whatsapp-demo and get no answer",
        {
            "channel": "whatsapp-demo",
            "service": "whatsapp",
            "runtime": "chat-runtime",
            "customer": "acme",
            "severity": "critical",
        },
    ),
    "number-banned": Sample(
        "WhatsAppNumberBanned",
        "The provider banned the number of whatsapp-demo (quality rating low)",
        {"channel": "whatsapp-demo", "service": "whatsapp", "customer": "acme", "severity": "critical"},
    ),
    "template-rejected": Sample(
        "WhatsAppTemplateRejected",
        "Template order_confirmation rejected on whatsapp-demo: confirmations are not delivered",
        {
            "channel": "whatsapp-demo",
            "template": "order_confirmation",
            "service": "whatsapp",
            "severity": "warning",
        },
    ),
    # Gateway health: they act on openclaw-gateway, in `make dev` the example gateway under supervisord
    # (config/dev.toml) for what it models and the sandbox's demo runtime of that name for the rest.
    "gateway-memory": Sample(
        "GatewayMemoryHigh",
        "Gateway openclaw-gateway memory at 85% of its cgroup high watermark",
        {"gateway": "openclaw-gateway", "service": "gateway", "severity": "warning"},
    ),
    "resource-pressure": Sample(
        "GatewayResourcePressure",
        "Host of openclaw-gateway under memory and CPU pressure",
        {"gateway": "openclaw-gateway", "service": "gateway", "risk": "medium", "severity": "warning"},
    ),
    "lost-session": Sample(
        "GatewaySessionLost",
        "Session sess-demo on openclaw-gateway died with tasks in flight",
        {"gateway": "openclaw-gateway", "session": "sess-demo", "service": "gateway", "severity": "warning"},
    ),
    "retry-storm": Sample(
        "RetryStorm",
        "Chained tasks on openclaw-gateway retrying in a loop",
        {"gateway": "openclaw-gateway", "service": "gateway", "severity": "warning"},
    ),
    "zombie-gateway": Sample(
        "GatewayZombie",
        "Gateway openclaw-gateway is up but sends no heartbeats",
        {"gateway": "openclaw-gateway", "service": "gateway", "severity": "critical"},
    ),
    "war-room": Sample(
        "ProductionDown",
        "{agent}-api answers HTTP 500 to most users since the last deploy",
        {"service": "{agent}-api", "priority": "P1", "feature": "new-checkout", "severity": "critical"},
    ),
    "rollback-request": Sample(
        "RollbackRequested",
        "Roll back the last deploy of {agent}-api",
        {"service": "{agent}-api", "kind": "code", "severity": "warning"},
    ),
    "bad-migration": Sample(
        "BadMigration",
        "The last migration of {agent}-api's database broke refunds: roll it back",
        {"service": "{agent}-api", "kind": "database", "severity": "warning"},
    ),
}
