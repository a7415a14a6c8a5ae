"""The parsed shapes: envelopes and their paging markers, field definitions, file parents."""

from __future__ import annotations

import pytest

from migration_pipeline.pipedrive.client import version_for
from migration_pipeline.pipedrive.models import Envelope, FieldDefinition, ParentRef


def test_v2_cursor_and_v1_offset_paging_markers() -> None:
    assert Envelope.model_validate({"data": [], "additional_data": {"next_cursor": "abc"}}).next_cursor == "abc"
    assert Envelope.model_validate({"data": [], "additional_data": {"next_cursor": None}}).next_cursor is None
    assert Envelope.model_validate({"data": []}).next_cursor is None
    more = {"pagination": {"start": 0, "limit": 2, "more_items_in_collection": True, "next_start": 2}}
    assert Envelope.model_validate({"data": [], "additional_data": more}).next_start == 2
    last = {"pagination": {"start": 2, "limit": 2, "more_items_in_collection": False}}
    assert Envelope.model_validate({"data": [], "additional_data": last}).next_start is None


def test_v1_fields_are_normalised_to_the_v2_names() -> None:
    raw = {"key": "a" * 40, "name": "Region", "field_type": "enum", "edit_flag": True, "options": [{"id": 3, "label": "EMEA"}]}
    field = FieldDefinition.from_v1(raw)
    assert (field.field_code, field.field_name, field.is_custom_field) == ("a" * 40, "Region", True)
    assert field.option_ids() == {"EMEA": 3}


def test_a_file_has_exactly_one_known_parent() -> None:
    assert ParentRef.model_validate({"deal_id": 5}).form() == {"deal_id": "5"}
    with pytest.raises(ValueError):
        ParentRef.model_validate({"deal_id": 5, "person_id": 6}).form()
    with pytest.raises(ValueError):
        ParentRef.model_validate({}).form()
    with pytest.raises(ValueError):
        ParentRef.model_validate({"invoice_id": 1})


@pytest.mark.parametrize(
    ("resource", "version"),
    [("deals", "v2"), ("deals/5/products/bulk", "v2"), ("dealFields", "v2"), ("leads", "v1"), ("notes", "v1"),
     ("files", "v1"), ("users", "v1"), ("leadFields", "v1"), ("organizationRelationships", "v1"), ("activityTypes", "v1")],
)
def test_each_resource_is_addressed_in_its_version(resource: str, version: str) -> None:
    assert version_for(resource) == version
