"""One TLS context per process for the HTTP clients Stanch opens.

Building a context loads the CA bundle, ~30 ms of CPU on a 2-core machine, and httpx builds one for every
client it makes, even for a plain http:// URL. A worker opens several clients at start, the console one per
health check, and the test suite a worker per test, so they share this one instead.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once."""
    return httpx.create_ssl_context()
