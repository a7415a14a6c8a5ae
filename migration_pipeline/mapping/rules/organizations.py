"""Dynamics accounts -> Pipedrive organizations: fields as the confirmed workbook says, parent links by rule.

Fields: `organizations.yaml` (the confirmed plan) decides every column, carried by the workbook
engine (`mapping/transform.py`): the name (required), owner, website, address, employee count,
revenue in the base currency (`revenue_base`, as Dynamics consolidated it) with the original
amount in its own currency and the exchange rate in custom fields, choices as their labels.

Structure, which no field map can say:
- Each account's parent becomes one "parent" relationship (`relationships`, loaded after the
  organizations). Circular chains are broken deterministically: in every cycle the link of the
  member whose account id sorts first is dropped, so that member becomes the top of its chain,
  and the cycle is reported (a self-parent is a cycle of one). A link to a parent that is not
  migrated is reported and dropped.

Extra frames: `relationships` (source_id = the child account, type, `ref:rel_owner_org_id:
organizations` = parent, `ref:rel_linked_org_id:organizations` = child) and `cycles` (one row
per cycle: the members in chain order and the account whose link was dropped).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import ObjectStage, Outcomes, ref_column
from migration_pipeline.mapping.spec import ObjectMap
from migration_pipeline.mapping.transform import TransformContext, transform_object

OBJECT = "organizations"
PARENT_OWNER = ref_column("rel_owner_org_id", OBJECT)
PARENT_LINKED = ref_column("rel_linked_org_id", OBJECT)


def stage_organizations(accounts: pd.DataFrame, object_map: ObjectMap, context: TransformContext) -> ObjectStage:
    """Every account staged as its workbook says, or rejected with a reason; parent links alongside."""
    accounts = accounts.reset_index(drop=True)
    carried = transform_object(accounts, object_map, context)
    outcomes = Outcomes(OBJECT)
    staged_accounts = accounts[accounts["accountid"].astype(str).isin(set(carried.staged["source_id"]))]
    relationships, cycles = parent_relationships(staged_accounts, outcomes)
    stage = outcomes.stage(carried.staged, relationships=relationships, cycles=cycles)
    stage.rejects = pd.concat([carried.rejects, stage.rejects], ignore_index=True)
    return stage


def parent_relationships(accounts: pd.DataFrame, outcomes: Outcomes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One parent relationship per account with a migrated parent; cycles broken and reported."""
    ids = accounts["accountid"].astype(str)
    parents = accounts["_parentaccountid_value"].astype(object).map(lambda value: value if isinstance(value, str) and value else None)
    has_parent = parents.notna()
    parent_of = dict(zip(ids[has_parent], parents[has_parent], strict=True))
    cycles = find_cycles(parent_of)
    dropped: dict[str, list[str]] = {}
    for cycle in cycles:
        dropped[cycle[0]] = cycle
        chain = " -> ".join([*cycle, cycle[0]])
        reason = "account is its own parent" if len(cycle) == 1 else f"circular parent chain {chain}"
        outcomes.reject([cycle[0]], "parent", [parent_of[cycle[0]]], f"{reason}; this link is dropped so the chain has a top", "parent_cycle")
    migrated = set(ids)
    missing_parent = has_parent & ~common.is_in(parents, migrated)
    outcomes.reject(ids[missing_parent], "parent", parents[missing_parent], "parent account is not migrated; no relationship", "parent_not_migrated")
    keep = has_parent & ~missing_parent & ~common.is_in(ids, set(dropped))
    relationships = pd.DataFrame({
        "source_id": ids[keep].to_numpy(),
        "type": "parent",
        PARENT_OWNER: parents[keep].to_numpy(),
        PARENT_LINKED: ids[keep].to_numpy(),
    })
    cycle_rows = pd.DataFrame({
        "members": [" -> ".join(cycle) for cycle in cycles],
        "length": [len(cycle) for cycle in cycles],
        "dropped_link_of": [cycle[0] for cycle in cycles],
    })
    return relationships, cycle_rows


def find_cycles(parent_of: Mapping[str, str | None]) -> list[list[str]]:
    """Every cycle of a parent graph (each node has at most one parent), each starting at its smallest id.

    One walk per unvisited node, marking the current path: meeting a node of the current path
    closes a cycle. Every node is visited once, so deep hierarchies cost linear time, and the
    result does not depend on the order the accounts came in.
    """
    state: dict[str, int] = {}  # 1: on the current walk, 2: done
    cycles: list[list[str]] = []
    for start in sorted(parent_of):
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in state:
            state[node] = 1
            path.append(node)
            node = parent_of.get(node)
        if node is not None and state.get(node) == 1:
            cycle = path[path.index(node):]
            first = cycle.index(min(cycle))
            cycles.append(cycle[first:] + cycle[:first])
        for member in path:
            state[member] = 2
    return sorted(cycles)
