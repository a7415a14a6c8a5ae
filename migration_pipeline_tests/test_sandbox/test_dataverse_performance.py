"""A 5000-row, 33-column page of a 100k-row table is served fast, and filtering stays vectorised."""

from __future__ import annotations

import statistics
import time

from migration_pipeline_tests.test_sandbox.dataverse_fixture import make_dataset, served


def test_pages_of_a_100k_row_table_are_fast() -> None:
    with served(make_dataset(accounts=100_000, contacts=50)) as dv:
        dv.get("accounts", params={"$top": "1"})  # build the key index once
        timings = []
        url = "accounts"
        for _ in range(6):
            started = time.perf_counter()
            response = dv.get(url)
            timings.append(time.perf_counter() - started)
            body = response.json()
            assert len(body["value"]) == 5000 and len(body["value"][0]) >= 33
            url = body["@odata.nextLink"]
        # The brief's target is 150 ms on the development machine; the bound leaves room for slower CI.
        assert statistics.median(timings) < 0.4, timings
        started = time.perf_counter()
        filtered = dv.get("accounts", params={"$filter": "revenue gt 9000000 and contains(address1_city,'ich')", "$select": "name"})
        assert filtered.status_code == 200 and time.perf_counter() - started < 0.5
