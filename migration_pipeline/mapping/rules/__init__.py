"""Per-object transform rules: raw Dynamics tables -> staged Pipedrive payloads, rejects and merges.

One module per Pipedrive object, each a pure function over pandas frames (see `common` for the
`RuleContext` they read and the `ObjectStage` they return); `run.transform_all` runs them all
in load order. Every source record ends staged, merged into another record by a named rule, or
rejected with a reason.
"""
