"""A small hand-made Pipedrive company served by the simulator, fresh for each test.

Each test gets its own simulator (its own burst windows, budget and records), so pacing and
fault tests never disturb each other; the seed is tiny, so starting one takes milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr

from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.sandbox.dataset import PipedrivePlan, PipedriveSeed
from migration_pipeline.sandbox.pipedrive.app import PipedriveOptions, create_app
from migration_pipeline.sandbox.serve import LoopbackServer

T = TypeVar("T")
ADMIN_TOKEN = "admin-token-5f1c2e9d8b7a6c5d4e3f2a1b"
SALES_TOKEN = "sales-token-0a9b8c7d6e5f4a3b2c1d0e9f"
# The simulator's burst window is shortened so that pacing tests take a second, not ten.
WINDOW = 0.5


def small_seed(plan: PipedrivePlan | None = None) -> PipedriveSeed:
    """Two users (admin, sales rep), one pipeline with two stages, no records yet."""
    users = [
        {"id": 1, "name": "Ada Admin", "email": "ada@example.com", "active_flag": True, "is_admin": 1,
         "default_currency": "EUR", "locale": "en_US", "timezone_name": "Europe/Oslo"},
        {"id": 2, "name": "Sam Sales", "email": "sam@example.com", "active_flag": True, "is_admin": 0,
         "default_currency": "EUR", "locale": "en_US", "timezone_name": "Europe/Oslo"},
    ]
    return PipedriveSeed(
        company_domain="acme",
        users=users,
        api_tokens={ADMIN_TOKEN: 1, SALES_TOKEN: 2},
        currencies=[
            {"id": 1, "code": "EUR", "name": "Euro", "decimal_points": 2, "symbol": "€", "active_flag": True, "is_custom_flag": False},
            {"id": 2, "code": "USD", "name": "US Dollar", "decimal_points": 2, "symbol": "$", "active_flag": True, "is_custom_flag": False},
        ],
        activity_types=[
            {"id": 1, "name": "Call", "key_string": "call", "icon_key": "call", "active_flag": True, "is_custom_flag": False, "order_nr": 1},
            {"id": 2, "name": "Meeting", "key_string": "meeting", "icon_key": "meeting", "active_flag": True, "is_custom_flag": False, "order_nr": 2},
            {"id": 3, "name": "Task", "key_string": "task", "icon_key": "task", "active_flag": True, "is_custom_flag": False, "order_nr": 3},
        ],
        pipelines=[{"id": 1, "name": "Sales", "order_nr": 1, "is_deal_probability_enabled": False}],
        stages=[
            {"id": 1, "pipeline_id": 1, "name": "Qualified", "order_nr": 1, "deal_probability": 20, "is_deal_rot_enabled": False, "days_to_rotten": None},
            {"id": 2, "pipeline_id": 1, "name": "Proposal", "order_nr": 2, "deal_probability": 60, "is_deal_rot_enabled": False, "days_to_rotten": None},
        ],
        plan=plan or PipedrivePlan(),
    )


@dataclass
class Company:
    """A served simulator and how to reach and steer it."""

    server: LoopbackServer
    app: Any

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def simulator(self) -> Any:
        return self.app.state.simulator

    def client(self, *tokens: str, **options: Any) -> PipedriveClient:
        options = {"rate_window": WINDOW, "backoff_base": 0.05, "backoff_max": 1.0, **options}
        return PipedriveClient(self.url, [SecretStr(token) for token in tokens or (ADMIN_TOKEN,)], **options)

    def run(self, work: Callable[[PipedriveClient], Awaitable[T]], *tokens: str, **options: Any) -> tuple[T, PipedriveClient]:
        """Run `work` with a fresh client; return its result and the (closed) client for its usage."""
        client = self.client(*tokens, **options)

        async def main() -> T:
            async with client:
                return await work(client)

        return asyncio.run(main()), client


@pytest.fixture
def company() -> Iterator[Callable[..., Company]]:
    """Start simulators on demand: `company(plan=..., **options)`; all stop at the end of the test."""
    servers: list[LoopbackServer] = []

    def start(plan: PipedrivePlan | None = None, **options: Any) -> Company:
        settings = {"burst_window_s": WINDOW, "random_seed": 7, **options}
        app = create_app(small_seed(plan), PipedriveOptions(**settings))
        server = LoopbackServer(app).start()
        servers.append(server)
        return Company(server, app)

    yield start
    for server in servers:
        server.stop()
