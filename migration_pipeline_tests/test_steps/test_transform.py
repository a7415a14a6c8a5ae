"""The workbook's custom fields ride on top of an object's rules, joined by id, their problems reported."""

from __future__ import annotations

import pandas as pd

from migration_pipeline.mapping.rules.common import MERGED_COLUMNS, REJECT_COLUMNS, ObjectStage
from migration_pipeline.mapping.spec import CustomFieldTarget, FieldMap, ObjectMap
from migration_pipeline.mapping.transform import TransformContext
from migration_pipeline.steps.transform import with_workbook_fields


def test_custom_fields_from_the_workbook_join_the_rules_rows() -> None:
    staged = pd.DataFrame({"source_id": ["c1", "c2"], "name": ["Ann", "Bo"], "custom:Job Title": ["CEO", None]})
    stage = ObjectStage("persons", staged, pd.DataFrame(columns=REJECT_COLUMNS), pd.DataFrame(columns=MERGED_COLUMNS))
    raw = pd.DataFrame({"contactid": ["c1", "c2", "c3"], "cr7f2_linkedinurl": ["linkedin.com/in/ann", "not a url", "x.io"],
                        "jobtitle": ["Boss", "Chief", None]})
    workbook = ObjectMap(object="persons", source_entity_set="contacts", source_key="contactid", fields=[
        FieldMap(source="cr7f2_linkedinurl", custom_field=CustomFieldTarget(name="LinkedIn Profile", field_type="varchar"), transform="url"),
        FieldMap(source="jobtitle", custom_field=CustomFieldTarget(name="Job Title", field_type="varchar"), transform="text"),  # the rule's
        FieldMap(source="jobtitle", status="not_migrated", notes="kept in Dynamics"),
    ])

    result = with_workbook_fields(stage, raw, workbook, TransformContext())

    rows = result.staged.set_index("source_id")
    assert rows.loc["c1", "custom:LinkedIn Profile"] == "https://linkedin.com/in/ann"
    assert rows.loc["c2", "custom:LinkedIn Profile"] is None
    assert rows.loc["c1", "custom:Job Title"] == "CEO"  # what the rule wrote stands
    assert list(result.staged["source_id"]) == ["c1", "c2"]  # no row the rules did not stage (c3)
    assert result.rejects[["source_id", "field", "reason"]].values.tolist() == [
        ["c2", "custom:LinkedIn Profile", "not a valid website URL"]
    ]
