"""The knobs of the Dataverse simulator: identity, limits, paging and latency.

Defaults mirror the real service (6000 requests per 300 s per identity, 5000-row pages) so
that a client tuned against the sandbox is tuned for production; tests shrink the limits
to reach the interesting edges in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataverseOptions:
    tenant_id: str = "00000000-0000-4000-8000-000000000001"
    client_id: str = "00000000-0000-4000-8000-000000000002"
    client_secret: str = "sandbox-client-secret"
    token_lifetime_seconds: int = 3600
    request_limit: int = 6000  # per identity per sliding window
    window_seconds: float = 300.0
    max_page_size: int = 5000
    latency_ms: float = 0.0
    # Each request sent while throttled pushes the end of the penalty this much further,
    # so a client that ignores Retry-After waits longer, as the real service does.
    throttle_penalty_seconds: float = 1.0
    # `$count=true` stops counting here (the service's documented cap for standard tables).
    count_limit: int = 5000
    # Seed of the random source behind `fault rate` injection, so flaky runs replay.
    fault_seed: int = 0
    # The application user the token maps to (answers WhoAmI, names itself in 403s).
    application_user_id: str = "00000000-0000-4000-8000-000000000003"
    business_unit_id: str = "00000000-0000-4000-8000-000000000004"

    def __repr__(self) -> str:
        # The client secret never reaches a log line through a repr.
        return (
            f"DataverseOptions(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, client_secret='***', "
            f"request_limit={self.request_limit}, window_seconds={self.window_seconds}, "
            f"max_page_size={self.max_page_size}, latency_ms={self.latency_ms})"
        )
