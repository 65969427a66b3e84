"""Wire models more than one fake system speaks.

The contract's `{"reason": ...}` body is `schemas.systems.EffectReason`, the model the http adapters send;
`EffectRequest` is that same class under the name the agent and channel routers import."""

from __future__ import annotations

from schemas.systems import EffectReason as EffectRequest

__all__ = ["EffectRequest"]
