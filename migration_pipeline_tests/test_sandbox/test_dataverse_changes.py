"""Change tracking over real HTTP: full sync with deltaLink, deltas with updates and deletes, expiry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from migration_pipeline_tests.test_sandbox.dataverse_fixture import Served, make_dataset, served

TRACK = "odata.track-changes,odata.maxpagesize=20"


def _full_sync(dv: Served, select: str = "name,accountnumber") -> tuple[list[dict], str]:  # type: ignore[type-arg]
    rows, last = dv.all_pages("accounts", TRACK, params={"$select": select})
    return rows, last["@odata.deltaLink"]


def test_full_sync_pages_then_gives_a_delta_link() -> None:
    with served(make_dataset(accounts=50)) as dv:
        first = dv.get("accounts", TRACK, params={"$select": "name"})
        assert "odata.track-changes" in first.headers["Preference-Applied"]
        assert "@odata.deltaLink" not in first.json() and "@odata.nextLink" in first.json()
        rows, link = _full_sync(dv, "name")
        assert len(rows) == 50 == len({row["accountid"] for row in rows})
        query = parse_qs(urlsplit(link).query)
        assert query["$select"] == ["name"]
        version, _, stamp = query["$deltatoken"][0].partition("!")
        assert int(version) > 0 and len(stamp) == len("08/22/2017 08:10:44")
        empty = dv.get(link, "odata.track-changes").json()
        assert empty["value"] == [] and empty["@odata.context"].endswith("$metadata#accounts(name)/$delta")
        assert "@odata.deltaLink" in empty


def test_delta_returns_creates_updates_then_deletes_and_second_delta_is_empty() -> None:
    with served(make_dataset(accounts=30)) as dv:
        _, link = _full_sync(dv)
        frame = dv.simulator.store.table("accounts").frame
        updated, deleted = frame["accountid"].iloc[3], frame["accountid"].iloc[4]
        created = dv.simulator.create_row("accounts", {"name": "Brand New"})["accountid"]
        dv.simulator.update_row("accounts", updated, {"accountnumber": "CHANGED"})
        dv.simulator.delete_row("accounts", deleted)
        transient = dv.simulator.create_row("accounts", {"name": "Short-lived"})["accountid"]
        dv.simulator.delete_row("accounts", transient)
        body = dv.get(link, "odata.track-changes").json()
        values = body["value"]
        changed = [row for row in values if "reason" not in row]
        removed = [row for row in values if row.get("reason") == "deleted"]
        assert [row["accountid"] for row in changed] == [created, updated]  # version order
        assert changed[1]["accountnumber"] == "CHANGED" and set(changed[0]) == {"@odata.etag", "name", "accountnumber", "accountid"}
        assert [row["id"] for row in removed] == [deleted, transient]
        assert removed[0]["@odata.context"].endswith("$metadata#accounts/$deletedEntity")
        assert values.index(removed[0]) > values.index(changed[-1])  # deletes come after changes
        second = dv.get(body["@odata.deltaLink"], "odata.track-changes").json()
        assert second["value"] == []


def test_delta_with_more_changes_than_a_page_is_paged() -> None:
    with served(make_dataset(accounts=60)) as dv:
        _, link = _full_sync(dv)
        for key in dv.simulator.store.table("accounts").frame["accountid"].iloc[:45]:
            dv.simulator.update_row("accounts", key, {"name": "bulk"})
        rows, last = dv.all_pages(link, TRACK)
        assert len(rows) == 45 == len({row["accountid"] for row in rows})
        assert "@odata.deltaLink" in last
        assert dv.get(last["@odata.deltaLink"], TRACK).json()["value"] == []


def test_query_options_refused_with_change_tracking() -> None:
    with served() as dv:
        for option, value in {"$filter": "name eq 'x'", "$orderby": "name", "$top": "1", "$expand": "primarycontactid"}.items():
            response = dv.get("accounts", "odata.track-changes", params={option: value})
            assert response.status_code == 400
            assert response.json()["error"]["message"] == f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'


def test_table_without_change_tracking_is_refused() -> None:
    with served() as dv:
        response = dv.get("transactioncurrencies", "odata.track-changes")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "0x80072491" and "isn't enabled for change tracking" in error["message"]


def test_expired_delta_token_asks_for_a_full_sync_and_a_fresh_sync_works() -> None:
    with served() as dv:
        _, link = _full_sync(dv)
        response = httpx.post(f"{dv.url}/_sandbox/change-tracking/expire")
        assert response.status_code == 204
        expired = dv.get(link, "odata.track-changes")
        assert expired.status_code == 400
        assert expired.json()["error"] == {
            "code": "0x80044352",
            "message": "Version stamp associated with the client has expired. Please perform a full sync.",
        }
        _, fresh = _full_sync(dv)
        assert dv.get(fresh, "odata.track-changes").status_code == 200


def test_token_older_than_the_retention_setting_expires() -> None:
    with served() as dv:
        _, link = _full_sync(dv)
        version = parse_qs(urlsplit(link).query)["$deltatoken"][0].split("!")[0]
        old = link.split("$deltatoken=")[0] + f"$deltatoken={version}%2101%2F01%2F2020%2000%3A00%3A00"
        assert dv.get(old, "odata.track-changes").json()["error"]["code"] == "0x80044352"
