"""Delta pickup: the `dynamics/changes` asset, `dynamics_delta_sensor` and the cutover schedule."""

import dagster as dg

from migration_pipeline.defs.delta import assets, sensors

defs = dg.Definitions.merge(assets.defs, sensors.defs)
