"""The one `Definitions` object: every file of `defs/` contributes its own part.

`build_definitions(settings)` pins the resources to explicit settings (the CLI uses it to run
the same jobs the UI shows); `defs`, what `workspace.yaml` loads, reads them from the
environment.
"""

import dagster as dg

from migration_pipeline.defs import delta as delta_defs
from migration_pipeline.defs import jobs
from migration_pipeline.defs.audit import assets as audit_assets
from migration_pipeline.defs.dynamics import assets as dynamics_assets
from migration_pipeline.defs.pipedrive import assets as pipedrive_assets
from migration_pipeline.defs.pipedrive import checks as pipedrive_checks
from migration_pipeline.defs.plan import assets as plan_assets
from migration_pipeline.defs.reports import assets as report_assets
from migration_pipeline.defs.resources import resources_from
from migration_pipeline.defs.rollback import defs as rollback_defs
from migration_pipeline.defs.sample import assets as sample_assets
from migration_pipeline.defs.staged import assets as staged_assets
from migration_pipeline.settings import Settings, load_settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    home = (settings or load_settings()).migration_home
    return dg.Definitions.merge(
        dg.Definitions(resources=resources_from(settings)),
        dynamics_assets.build_defs(home),
        audit_assets.build_defs(home),
        plan_assets.defs,
        staged_assets.defs,
        sample_assets.defs,
        pipedrive_assets.defs,
        pipedrive_checks.defs,
        report_assets.defs,
        jobs.defs,
        rollback_defs,
        delta_defs.defs,
    )


defs = build_definitions()
