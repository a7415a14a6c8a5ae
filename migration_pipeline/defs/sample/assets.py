"""`plan/sample`: the records a sample migration loads, chosen from what is staged (`steps/sample.py`).

Its own group, `sample`, so that only the `sample_migration` job chooses a sample; the load
assets depend on it because, run as a sample (`sample_only`), each takes its records from it.
"""

import dagster as dg
from pydantic import Field

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.plan.assets import WORKBOOK_KEY
from migration_pipeline.defs.resources import WarehouseResource
from migration_pipeline.steps.sample import DEFAULT_SIZE, select_sample, shown, summary
from migration_pipeline.steps.transform import STAGED_OBJECTS

SAMPLE_KEY = dg.AssetKey(["plan", "sample"])


class SampleConfig(dg.Config):
    """How big a sample to choose (`migrate sample --size N`)."""

    size: int = Field(default=DEFAULT_SIZE, ge=1, description="Records chosen per object; coverage and the records they "
                      "link to come on top.")


@dg.asset(
    key=SAMPLE_KEY,
    deps=[WORKBOOK_KEY, *(["staged", name] for name in STAGED_OBJECTS)],
    group_name="sample",
    kinds={"duckdb"},
    owners=OWNERS,
    description="The sample migration's records (`plan.sample`: object, source_id, reason): every object, every field "
    "with values, every stage, owner bucket and enumeration value at least once, with every record they link to; "
    "deterministic.",
)
def sample(config: SampleConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    chosen = select_sample(warehouse.warehouse(), warehouse.mappings_path, config.size)
    missing = chosen.coverage[chosen.coverage["sampled"] == 0]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(chosen.records),
            "size": config.size,
            "objects": dg.MetadataValue.md(summary(chosen.records).to_markdown(index=False)),
            "covered": f"{len(chosen.coverage) - len(missing)} of {len(chosen.coverage)} coverage keys",
            "stages": dg.MetadataValue.md("\n".join(f"- {stage}" for stage in shown(chosen.coverage, "stage")) or "None staged."),
            "owner_buckets": ", ".join(shown(chosen.coverage, "owner")),
            "coverage": dg.MetadataValue.md(chosen.coverage.to_markdown(index=False)),
        }
    )


defs = dg.Definitions(assets=[sample])
