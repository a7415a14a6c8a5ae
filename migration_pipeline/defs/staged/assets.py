"""Transform assets: `staged/<object>` for every object, staged together in one step.

Later objects point at earlier ones (a person at its organization, an activity at its deal),
so the rules run over all of them at once; each object is still its own asset, with its own
counts, so the UI shows what every one came to.
"""

from collections.abc import Iterator

import dagster as dg

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.plan.assets import WORKBOOK_KEY
from migration_pipeline.defs.resources import WarehouseResource
from migration_pipeline.steps.transform import RULE_INPUTS, STAGED_OBJECTS, stage_everything

DESCRIPTIONS = {
    "organizations": "Organizations: fields as organizations.yaml says; parent links (organizations_relationships) and broken cycles.",
    "persons": "Persons: every email and phone with labels and one primary; orphans on the placeholder organization.",
    "products": "Products with their prices per currency; bundles flattened into their members.",
    "deals": "Deals through the stage map, with value, status and close times; closed ones listed for archiving.",
    "deal_products": "Deal product lines; bundle lines expanded to member lines, write-ins to products of their own.",
    "leads": "Open and disqualified leads (archived, labelled); qualified ones merged into their deal (staged.merged).",
    "activities": "Calls, emails, tasks and meetings in one table, with participants and the regarding link.",
    "notes": "Annotation text as notes on the right organization, person or deal.",
    "files": "Attachments to upload, with safe names; oversize ones in files_manual_uploads for manual upload.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["staged", name],
            deps=[WORKBOOK_KEY, ["dynamics", "changes"], *(["dynamics", entity_set] for entity_set in RULE_INPUTS)],
            group_name="transform",
            kinds={"duckdb", "parquet"},
            owners=OWNERS,
            description=f"{DESCRIPTIONS[name]} `staged.{name}`; what cannot be carried is in `staged.rejects`.",
        )
        for name in STAGED_OBJECTS
    ],
    name="stage_objects",
)
def staged(warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    for name, result in stage_everything(warehouse.warehouse(), warehouse.mappings_path).items():
        yield dg.MaterializeResult(
            asset_key=["staged", name],
            metadata={
                "dagster/row_count": result.staged,
                "rejected_records": result.rejected_records,
                "rejected_fields": result.rejected_fields,
                "merged": result.merged,
                **{f"extra_{extra}": rows for extra, rows in result.extra.items()},
            },
        )


defs = dg.Definitions(assets=[staged])
