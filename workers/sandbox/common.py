"""Small helpers every fake system of the sandbox shares: the clock of its records and its 404."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

from fastapi import HTTPException


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


T = TypeVar("T")


def found_or_404(items: Mapping[str, T], key: str, detail: str) -> T:
    """`items[key]`, or the 404 (with `detail`) the platform answers for something it does not know."""
    if key not in items:
        raise HTTPException(404, detail)
    return items[key]
