"""The client against the Dataverse simulator, over real sockets on 127.0.0.1.

DYNAMICS_URL and DYNAMICS_AUTHORITY_URL both point at the simulator, which serves Entra's
token endpoint next to the Web API. Fault injection goes through `app.state.simulator`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from migration_pipeline.dynamics import ChangeTrackingExpired, DataverseClient, shared_gate
from migration_pipeline.errors import ApiError, AuthenticationError, ConfigurationError, PermissionDenied, ServiceUnavailable
from migration_pipeline.sandbox.dataset import DataverseDataset
from migration_pipeline.sandbox.dataverse.app import DataverseOptions, DataverseSimulator, create_app
from migration_pipeline.sandbox.serve import LoopbackServer
from migration_pipeline.sandbox.synthetic import generate
from migration_pipeline.settings import load_settings

# 20,000 business records give activityparties over 12,000 rows: three 5000-row pages.
LARGE_RECORDS = 20_000


@dataclass
class Served:
    server: LoopbackServer
    options: DataverseOptions
    simulator: DataverseSimulator

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **options: Any) -> DataverseClient:
        options = {"max_attempts": 4, "backoff": 0.05, **options}
        return DataverseClient(
            self.url, self.options.tenant_id, self.options.client_id, SecretStr(self.options.client_secret), self.url, **options
        )


def serve(dataset: DataverseDataset, options: DataverseOptions, port: int = 0) -> Served:
    app = create_app(dataset, options)
    server = LoopbackServer(app, port=port).start()
    return Served(server, options, app.state.simulator)


@pytest.fixture(scope="module")
def large_dataset() -> DataverseDataset:
    return generate(LARGE_RECORDS, 7).dataverse


@pytest.fixture(scope="module")
def large(large_dataset: DataverseDataset) -> Iterator[Served]:
    served = serve(large_dataset, DataverseOptions())
    yield served
    served.server.stop()


@pytest.fixture(scope="module")
def small_dataset() -> DataverseDataset:
    return generate(1000, 11).dataverse


@pytest.fixture
def small(small_dataset: DataverseDataset) -> Iterator[Served]:
    """A fresh simulator per test, so injected faults, pauses and edits never leak into another test."""
    served = serve(small_dataset, DataverseOptions())
    yield served
    served.server.stop()
    # Pauses are per identity and the port may be reused by a later test: leave the gate open.
    shared_gate(served.url, served.options.tenant_id, served.options.client_id).wait()


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- tokens ---------------------------------------------------------------------------------


def test_one_token_serves_many_requests(large: Served) -> None:
    issued_before = large.simulator.stats().get("token_issued", 0)
    with large.client() as client:
        for _ in range(5):
            client.get("WhoAmI")
        assert client.stats.token_requests == 1
    assert large.simulator.stats().get("token_issued", 0) - issued_before == 1


def test_a_token_is_renewed_before_it_expires(small_dataset: DataverseDataset) -> None:
    # Tokens live 2 s here, so the client renews them after 1 s, before the service would refuse them.
    served = serve(small_dataset, DataverseOptions(token_lifetime_seconds=3))
    try:
        with served.client() as client:
            client.get("WhoAmI")
            time.sleep(1.1)
            client.get("WhoAmI")
            assert client.stats.token_requests == 2
        assert served.simulator.stats().get("unauthorized", 0) == 0
    finally:
        served.server.stop()


def test_a_rejected_token_is_renewed_once(small_dataset: DataverseDataset) -> None:
    # A new simulator on the same address signs with a new key: the cached token is now invalid.
    first = serve(small_dataset, DataverseOptions())
    port = first.server.port
    with first.client() as client:
        client.get("WhoAmI")
        first.server.stop()
        second = serve(small_dataset, DataverseOptions(), port=port)
        try:
            assert client.get("WhoAmI")["UserId"] == second.options.application_user_id
            assert client.stats.token_requests == 2
            assert second.simulator.stats()["unauthorized"] == 1
        finally:
            second.server.stop()


@pytest.mark.parametrize(
    ("field", "setting"),
    [("client_secret", "DYNAMICS_CLIENT_SECRET"), ("client_id", "DYNAMICS_CLIENT_ID"), ("tenant_id", "DYNAMICS_TENANT_ID")],
)
def test_refused_credentials_name_the_setting_to_fix(large: Served, field: str, setting: str) -> None:
    wrong_secret = "Wrong~Secret.Value-123"
    credentials = {
        "tenant_id": large.options.tenant_id,
        "client_id": large.options.client_id,
        "client_secret": large.options.client_secret,
        field: wrong_secret if field == "client_secret" else "11111111-1111-4111-8111-111111111111",
    }
    client = DataverseClient(
        large.url, credentials["tenant_id"], credentials["client_id"], SecretStr(credentials["client_secret"]), large.url
    )
    with client, pytest.raises(AuthenticationError) as caught:
        client.get("WhoAmI")
    error = caught.value
    assert setting in str(error)
    for text in (str(error), repr(error), repr(error.args), error.hint):
        assert wrong_secret not in text and large.options.client_secret not in text


def test_a_url_that_is_not_the_environment_is_named(large: Served) -> None:
    client = DataverseClient(
        f"{large.url}/contoso", large.options.tenant_id, large.options.client_id, SecretStr(large.options.client_secret), large.url
    )
    with client, pytest.raises(AuthenticationError, match="Fix DYNAMICS_URL"):
        client.get("WhoAmI")


def test_an_unreachable_authority_is_named() -> None:
    nowhere = f"http://127.0.0.1:{unused_port()}"
    client = DataverseClient(nowhere, "tenant", "client", SecretStr("secret"), nowhere, max_attempts=2, backoff=0.01)
    with client, pytest.raises(ServiceUnavailable) as caught:
        client.get("WhoAmI")
    assert f"DYNAMICS_AUTHORITY_URL={nowhere}" in str(caught.value)


def test_from_settings_names_what_is_missing(large: Served) -> None:
    with pytest.raises(ConfigurationError, match="DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID, DYNAMICS_CLIENT_SECRET"):
        DataverseClient.from_settings(load_settings(_env_file=None, dynamics_url=large.url))
    settings = load_settings(
        _env_file=None,
        dynamics_url=large.url + "/",
        dynamics_authority_url=large.url,
        dynamics_tenant_id=large.options.tenant_id,
        dynamics_client_id=large.options.client_id,
        dynamics_client_secret=large.options.client_secret,
    )
    with DataverseClient.from_settings(settings) as client:
        assert client.get("WhoAmI")["UserId"] == large.options.application_user_id


# --- reading ----------------------------------------------------------------------------------


def test_paging_returns_every_row_exactly_once(large: Served, large_dataset: DataverseDataset) -> None:
    expected = set(large_dataset.tables["activityparties"]["activitypartyid"])
    assert len(expected) > 10_000
    with large.client() as client:
        pages = list(client.iter_pages("activityparties", select=["activitypartyid", "participationtypemask"]))
    ids = [row["activitypartyid"] for page in pages for row in page.rows]
    assert len(pages) == 3 and all(len(page.rows) == 5000 for page in pages[:-1])
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert pages[-1].next_link is None


def test_smaller_pages_and_annotations(large: Served, large_dataset: DataverseDataset) -> None:
    with large.client() as client:
        rows = list(
            client.iter_rows(
                "accounts",
                select=["name", "industrycode"],
                filter="statecode eq 0",
                annotations="OData.Community.Display.V1.FormattedValue",
                page_size=700,
            )
        )
        assert client.stats.requests > 1
    accounts = large_dataset.tables["accounts"]
    assert len(rows) == int((accounts["statecode"] == 0).sum())
    labelled = [row for row in rows if row.get("industrycode") is not None]
    assert labelled and all("industrycode@OData.Community.Display.V1.FormattedValue" in row for row in labelled)


def test_one_client_serves_several_threads(large: Served, large_dataset: DataverseDataset) -> None:
    tables = ["accounts", "contacts", "opportunities", "activityparties"]
    counted: dict[str, int] = {}
    with large.client() as client:

        def extract(entity_set: str) -> None:
            counted[entity_set] = sum(1 for _ in client.iter_rows(entity_set))

        workers = [threading.Thread(target=extract, args=(name,)) for name in tables]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert client.stats.token_requests == 1
    assert counted == {name: len(large_dataset.tables[name]) for name in tables}


def test_count_is_exact_beyond_the_count_cap(large: Served, large_dataset: DataverseDataset) -> None:
    with large.client() as client:
        assert client.count("accounts") == len(large_dataset.tables["accounts"])
        assert client.count("activityparties") == len(large_dataset.tables["activityparties"]) > 5000


def test_a_bad_query_carries_dataverse_code_and_message(large: Served) -> None:
    with large.client() as client, pytest.raises(ApiError) as caught:
        list(client.iter_rows("accounts", select=["nmae"]))
    assert caught.value.status_code == 400 and caught.value.code == "0x80060888"
    assert "nmae" in str(caught.value)


def test_an_unreadable_table_is_a_permission_problem(large: Served) -> None:
    with large.client() as client, pytest.raises(PermissionDenied) as caught:
        list(client.iter_rows("sdkmessageprocessingsteps"))
    text = str(caught.value)
    assert "'sdkmessageprocessingstep'" in text and "prv" in text and "security role" in text
    assert large.simulator.stats().get("served", 0) > 0


def test_note_attachments_download_byte_for_byte(large: Served, large_dataset: DataverseDataset) -> None:
    by_size = sorted(large_dataset.attachments.items(), key=lambda item: item[1].size)
    with large.client() as client:
        for annotation_id, attachment in [by_size[0], by_size[len(by_size) // 2], by_size[-1]]:
            body = client.download_annotation_body(str(annotation_id))
            assert body == attachment.body()
            assert len(body) == attachment.size


def test_metadata_helpers(large: Served) -> None:
    with large.client() as client:
        entities = {entity.logical_name: entity for entity in client.entity_definitions()}
        assert entities["account"].entity_set_name == "accounts" and entities["account"].change_tracking_enabled
        assert client.entity_definition("contact").primary_id_attribute == "contactid"
        attributes = {attribute.logical_name: attribute for attribute in client.attributes("account")}
        assert attributes["name"].is_primary_name and attributes["accountid"].is_primary_id
        options = client.choice_options("opportunity")
        statuses = {option.value: (option.text, option.state) for option in options["statuscode"]}
        assert statuses[3] == ("Won", 1)
        assert {option.text for option in options["statecode"]} == {"Open", "Won", "Lost"}


# --- transient failures -------------------------------------------------------------------------


def test_a_429_waits_for_retry_after_then_succeeds(small: Served, small_dataset: DataverseDataset) -> None:
    small.simulator.inject_fault("/api/", 429, count=1, retry_after=1)
    with small.client() as client:
        started = time.monotonic()
        rows = list(client.iter_rows("accounts", select=["name"]))
        elapsed = time.monotonic() - started
        assert client.stats.throttled == 1
    assert len(rows) == len(small_dataset.tables["accounts"])
    assert elapsed >= 0.95


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_failures_are_retried(small: Served, status: int) -> None:
    small.simulator.inject_fault("/api/", status, count=2)
    with small.client() as client:
        assert client.get("WhoAmI")["UserId"] == small.options.application_user_id
        assert client.stats.requests == 3


def test_retries_are_bounded(small: Served) -> None:
    small.simulator.inject_fault("/api/", 503, count=10)
    with small.client(max_attempts=3) as client, pytest.raises(ServiceUnavailable) as caught:
        client.get("WhoAmI")
    assert "503" in str(caught.value) and "3 attempts" in str(caught.value) and "DYNAMICS_URL" in str(caught.value)
    assert small.simulator.stats()["faulted"] == 3


def test_a_429_pauses_every_worker_of_the_identity(small: Served) -> None:
    small.simulator.inject_fault("/api/", 429, count=1, retry_after=1)
    throttled_worker, other_worker = small.client(), small.client()
    assert throttled_worker.gate is other_worker.gate
    first = threading.Thread(target=throttled_worker.get, args=("WhoAmI",))
    first.start()
    deadline = time.monotonic() + 5
    while throttled_worker.gate.remaining() == 0:
        assert time.monotonic() < deadline, "the throttled worker never paused the gate"
        time.sleep(0.005)
    paused_for = throttled_worker.gate.remaining()
    started = time.monotonic()
    other_worker.get("WhoAmI")
    waited = time.monotonic() - started
    first.join()
    with throttled_worker, other_worker:
        assert waited >= paused_for - 0.05
        assert other_worker.stats.throttled == 0
        assert small.simulator.stats()["faulted"] == 1


def test_a_refused_connection_names_the_dynamics_url(small: Served) -> None:
    # Entra (the simulator here) issues the token; the environment URL itself refuses connections.
    # The simulator only grants tokens for its own URL, so the token is obtained first, then the
    # client is pointed at a port where nothing listens by stopping the server.
    with small.client(max_attempts=2) as client:
        client.get("WhoAmI")
        small.server.stop()
        with pytest.raises(ServiceUnavailable) as caught:
            client.get("WhoAmI")
    assert f"DYNAMICS_URL={small.url}" in str(caught.value)
    assert "DYNAMICS_AUTHORITY_URL" not in caught.value.message


# --- change tracking ----------------------------------------------------------------------------


def test_change_tracking_reports_changes_and_deletes(small: Served, small_dataset: DataverseDataset) -> None:
    accounts = small_dataset.tables["accounts"]["accountid"]
    deleted_id, changed_id = str(accounts.iloc[0]), str(accounts.iloc[1])
    with small.client() as client:
        pages = list(client.iter_pages("accounts", select=["name"], track_changes=True))
        assert sum(len(page.rows) for page in pages) == len(accounts)
        delta_link = pages[-1].delta_link
        assert delta_link is not None and all(page.delta_link is None for page in pages[:-1])

        small.simulator.delete_row("accounts", deleted_id)
        small.simulator.update_row("accounts", changed_id, {"name": "Renamed Ltd"})
        [delta] = list(client.follow_delta(delta_link))
        assert delta.deleted_ids == [deleted_id]
        assert [(row["accountid"], row["name"]) for row in delta.changed_rows] == [(changed_id, "Renamed Ltd")]
        assert delta.delta_link is not None and delta.delta_link != delta_link

        [nothing] = list(client.follow_delta(delta.delta_link))
        assert nothing.rows == [] and nothing.delta_link is not None


def test_an_expired_delta_link_asks_for_a_full_sync(small: Served) -> None:
    with small.client() as client:
        delta_link = list(client.iter_pages("accounts", select=["name"], track_changes=True))[-1].delta_link
        assert delta_link is not None
        small.simulator.expire_change_tracking()
        with pytest.raises(ChangeTrackingExpired, match="full"):
            list(client.follow_delta(delta_link))
