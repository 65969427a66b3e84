from __future__ import annotations

import httpx
from temporalio.exceptions import ApplicationError


def raise_for_status(response: httpx.Response, what: str) -> None:
    """A 4xx is the caller's fault and will not get better: fail without retrying. A 5xx is retried."""
    if response.is_success:
        return
    detail = response.text[:300]
    if 400 <= response.status_code < 500:
        raise ApplicationError(
            f"{what} refused with HTTP {response.status_code}: {detail}",
            type="PlatformRejected",
            non_retryable=True,
        )
    raise RuntimeError(f"{what} failed with HTTP {response.status_code}: {detail}")
