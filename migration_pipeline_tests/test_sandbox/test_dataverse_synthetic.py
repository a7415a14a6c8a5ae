"""The simulator over the synthetic generator's dataset: every table, its metadata and change tracking."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migration_pipeline.sandbox.dataset import DataverseDataset
from migration_pipeline.sandbox.synthetic import generate
from migration_pipeline_tests.test_sandbox.dataverse_fixture import Served, served


@pytest.fixture(scope="module")
def dataset() -> DataverseDataset:
    return generate(records=2000, seed=42).dataverse


@pytest.fixture(scope="module")
def dv(dataset: DataverseDataset) -> Iterator[Served]:
    with served(dataset) as running:
        yield running


def test_every_table_pages_completely_with_every_annotation(dv: Served, dataset: DataverseDataset) -> None:
    for name, frame in dataset.tables.items():
        entity = dataset.entity_by_set(name)
        response = dv.get(name, 'odata.include-annotations="*",odata.maxpagesize=500')
        if not entity.readable:
            assert response.status_code == 403, name
            continue
        rows, _ = dv.all_pages(name, 'odata.include-annotations="*",odata.maxpagesize=500')
        keys = [row[entity.primary_id_attribute] for row in rows]
        assert len(keys) == len(set(keys)) == len(frame), name


def test_every_readable_table_has_metadata_and_its_attributes_are_selectable(dv: Served, dataset: DataverseDataset) -> None:
    for entity in dataset.entities.values():
        attributes = dv.get(f"EntityDefinitions(LogicalName='{entity.logical_name}')/Attributes", params={"$select": "LogicalName,AttributeType,IsValidForRead"})
        assert attributes.status_code == 200, entity.logical_name
        if not entity.readable:
            continue
        readable = [a.column for a in entity.attributes if a.is_valid_for_read and a.column != "documentbody"]
        response = dv.get(entity.entity_set_name, params={"$select": ",".join(readable), "$top": "2"})
        assert response.status_code == 200, (entity.logical_name, response.text[:300])


def test_change_tracking_on_tracked_tables(dv: Served, dataset: DataverseDataset) -> None:
    tracked = [e for e in dataset.entities.values() if e.change_tracking_enabled and e.readable and e.entity_set_name in dataset.tables]
    assert tracked
    for entity in tracked[:5]:
        rows, last = dv.all_pages(entity.entity_set_name, "odata.track-changes,odata.maxpagesize=1000", params={"$select": entity.primary_id_attribute})
        assert len(rows) == len(dataset.tables[entity.entity_set_name])
        assert dv.get(last["@odata.deltaLink"], "odata.track-changes").json()["value"] == []
