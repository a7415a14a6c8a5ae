"""Dynamics opportunities -> Pipedrive deals.

Rules:
- `title` is the topic (cut to 255, reported); an opportunity without one is not migrated.
- Pipeline and stage come from the confirmed stage map (`ref:stage_id:stages` = "<pipeline>/
  <stage>", the stage names the plan provisions). An opportunity with no stage goes to its
  process's first stage (with no process either, the first pipeline's), and that is reported
  (rule `stage_map:first_stage`); a stage the map does not know is rejected field by field (the
  confirmation step refuses such a plan, so this only shows a plan edited after confirming).
- `status` is open / won / lost from `statecode`. Won and lost deals get `close_time` and
  `won_time` / `lost_time`: Dynamics keeps only the close *date*, which becomes 12:00:00 UTC so
  it reads as the same calendar day for users anywhere from UTC-11 to UTC+11; without one,
  `modifiedon` is used and that is reported. Lost deals carry their status reason ("Canceled",
  "Out-Sold") as `lost_reason`.
- `value` is the actual revenue of a won deal (else the estimate) in the deal's own currency
  (`currency`, its ISO code): Pipedrive converts per deal, so nothing is consolidated here.
  `probability` and `expected_close_date` are carried as they are.
- The organization is the opportunity's account (else its customer, when that is an account),
  the person its contact (else the customer, when a contact); a link to a record that is not
  migrated is rejected field by field.
- v2 cannot set a deal's `add_time`, so `createdon` is kept in "Dynamics Created On" (UTC RFC
  3339); the status reason, the description and the originating lead are kept in custom fields.
- Closed deals are historical: they are listed in `archive_candidates` (source_id, status,
  close_time) for the loader to archive where the account's deal cap requires it. They are not
  created archived, because Pipedrive refuses edits to archived deals and their products,
  notes and activities are attached afterwards.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import (
    DYNAMICS_ID,
    MAX_AMOUNT,
    NAME_LIMIT,
    TEXT_LIMIT,
    VARCHAR_LIMIT,
    Currencies,
    Links,
    ObjectStage,
    Outcomes,
    RuleContext,
    ref_column,
)
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD, CustomFieldTarget
from migration_pipeline.mapping.stages import StageMap

OBJECT = "deals"
ORG = ref_column("org_id", "organizations")
PERSON = ref_column("person_id", "persons")
STAGE = ref_column("stage_id", "stages")
STATUS = {0: "open", 1: "won", 2: "lost"}
CLOSE_HOUR = "T12:00:00Z"

CUSTOM_FIELDS = (
    CustomFieldTarget(name=DYNAMICS_ID_FIELD, field_type="varchar"),
    CustomFieldTarget(name="Dynamics Created On", field_type="varchar"),
    CustomFieldTarget(name="Dynamics Status Reason", field_type="varchar"),
    CustomFieldTarget(name="Description", field_type="text"),
    CustomFieldTarget(name="Dynamics Originating Lead", field_type="varchar"),
)


def transform_deals(opportunities: pd.DataFrame, transactioncurrencies: pd.DataFrame, context: RuleContext, links: Links) -> ObjectStage:
    """Every opportunity staged as a deal, or rejected with a reason; `links` knows the migrated orgs and persons."""
    opportunities = opportunities.reset_index(drop=True)
    outcomes = Outcomes(OBJECT)
    ids = opportunities["opportunityid"].astype(str)
    carry = functools.partial(outcomes.carry_column, opportunities, ids)
    staged = common.frame_of({"source_id": ids}, opportunities.index)
    staged["title"] = carry("name", "title", common.texts(NAME_LIMIT), "text")
    staged["owner_id"] = carry("_ownerid_value", "owner_id", lambda owners: common.owner(owners, context), "owner")
    staged[ORG] = linked(opportunities, ids, "_parentaccountid_value", "account", links, ORG, outcomes)
    staged[PERSON] = linked(opportunities, ids, "_parentcontactid_value", "contact", links, PERSON, outcomes)
    staged[STAGE] = stages(opportunities, ids, context.stage_map, outcomes)
    status = statuses(opportunities, ids, outcomes)
    staged["status"] = status
    for column, values in close_times(opportunities, ids, status, outcomes).items():
        staged[column] = values
    lost_reason = common.text(opportunities["statuscode__label"].where((status == "lost").to_numpy()), VARCHAR_LIMIT)
    staged["lost_reason"] = outcomes.carry(lost_reason, ids, "lost_reason", opportunities["statuscode__label"], "text:statuscode")
    staged["value"], staged["currency"] = deal_value(opportunities, ids, status, Currencies.from_raw(transactioncurrencies), outcomes)
    staged["probability"] = probability(opportunities, ids, outcomes)
    staged["expected_close_date"] = carry("estimatedclosedate", "expected_close_date", common.iso_date, "date")
    staged[DYNAMICS_ID] = ids
    staged["custom:Dynamics Created On"] = carry("createdon", "custom:Dynamics Created On", common.utc_timestamp, "utc")
    staged["custom:Dynamics Status Reason"] = common.text(opportunities["statuscode__label"], VARCHAR_LIMIT).values
    staged["custom:Description"] = carry("description", "custom:Description", common.texts(TEXT_LIMIT), "text")
    staged["custom:Dynamics Originating Lead"] = common.text(opportunities["_originatingleadid_value"], VARCHAR_LIMIT).values

    untitled = staged["title"].isna().to_numpy()
    outcomes.reject(ids[untitled], "*", None, "no topic; Pipedrive requires a deal title", "required:name")
    staged = staged[~untitled]
    closed = staged["status"].isin(["won", "lost"])
    candidates = staged.loc[closed, ["source_id", "status", "close_time"]].reset_index(drop=True)
    return outcomes.stage(staged, archive_candidates=candidates)


def linked(opportunities: pd.DataFrame, ids: pd.Series, column: str, table: str, links: Links, field_name: str, outcomes: Outcomes) -> pd.Series:
    """The migrated record of `column` (else of the customer, when the customer is a `table`); a lost link is reported."""
    customer = opportunities["_customerid_value"].where((opportunities["_customerid_value__table"] == table).to_numpy())
    source = opportunities[column].astype(object).where(opportunities[column].notna(), customer.astype(object))
    landed = links.resolve(table, source)
    lost = (source.notna() & landed["source_id"].isna()).to_numpy()
    outcomes.reject(ids[lost], field_name, source[lost], f"linked {table} is not migrated", f"link:{column}")
    return common.plain_series(landed["source_id"])


def stages(opportunities: pd.DataFrame, ids: pd.Series, stage_map: StageMap | None, outcomes: Outcomes) -> pd.Series:
    """"<pipeline>/<stage>" through the stage map, resolved once per distinct (process, stage)."""
    process = common.plain_series(opportunities["_processid_value"])
    stage = common.plain_series(opportunities["_stageid_value"])
    if stage_map is None:
        outcomes.reject(ids, STAGE, stage, "no confirmed stage map; the deal would land in the default pipeline", "stage_map")
        return pd.Series(None, index=opportunities.index, dtype=object)
    pairs = pd.DataFrame({"process": process, "stage": stage}).drop_duplicates()
    found = {(p, s): stage_map.stage_for(p, s) for p, s in pairs.itertuples(index=False)}
    names = [found[(p, s)] for p, s in zip(process, stage, strict=True)]
    values = common.plain_series([None if name is None else f"{name[0]}/{name[1]}" for name in names], opportunities.index)
    unmapped = values.isna().to_numpy()
    outcomes.reject(ids[unmapped], STAGE, stage[unmapped], "stage is not in the stage map", "stage_map:stageid")
    defaulted = (stage.isna() & values.notna()).to_numpy()
    outcomes.reject(ids[defaulted], STAGE, values[defaulted], "no stage in Dynamics; placed in the first stage of its pipeline",
                    "stage_map:first_stage")
    return values


def statuses(opportunities: pd.DataFrame, ids: pd.Series, outcomes: Outcomes) -> pd.Series:
    state = pd.to_numeric(opportunities["statecode"], errors="coerce")
    status = common.plain_series(state.map(STATUS))
    unknown = status.isna().to_numpy()
    outcomes.reject(ids[unknown], "status", state[unknown], "unknown state; migrated as open", "status:statecode")
    return status.where(~unknown, "open")


def close_times(opportunities: pd.DataFrame, ids: pd.Series, status: pd.Series, outcomes: Outcomes) -> dict[str, pd.Series]:
    """close_time for won and lost deals, won_time / lost_time for each; the close date at noon UTC."""
    closed = status.isin(["won", "lost"]).to_numpy()
    day = common.iso_date(opportunities["actualclosedate"]).values.astype(object)
    noon = (day.where(day.notna(), "").astype(str) + CLOSE_HOUR).where(day.notna(), None)
    modified = common.utc_timestamp(opportunities["modifiedon"]).values.astype(object)
    fallback = closed & noon.isna().to_numpy()
    outcomes.reject(ids[fallback], "close_time", None, "closed with no close date; modifiedon used", "close_time:actualclosedate")
    close = common.plain_series(noon.where(~fallback, modified).where(closed, None))
    return {
        "close_time": close,
        "won_time": close.where((status == "won").to_numpy(), None),
        "lost_time": close.where((status == "lost").to_numpy(), None),
    }


def deal_value(opportunities: pd.DataFrame, ids: pd.Series, status: pd.Series, currencies: Currencies,
               outcomes: Outcomes) -> tuple[pd.Series, pd.Series]:
    """(value, currency): the actual revenue of won deals, else the estimate, in the deal's currency."""
    estimated = pd.to_numeric(opportunities["estimatedvalue"], errors="coerce").astype(float)
    actual = pd.to_numeric(opportunities["actualvalue"], errors="coerce").astype(float)
    value = actual.where((status == "won").to_numpy() & actual.notna().to_numpy(), estimated)
    currency = currencies.code_of(opportunities["_transactioncurrencyid_value"])
    no_currency = (value.notna() & currency.isna()).to_numpy()
    out_of_range = (value.notna() & ((value < 0) | (value > MAX_AMOUNT))).to_numpy()
    outcomes.reject(ids[no_currency], "value", value[no_currency], "amount with no known currency", "value:transactioncurrencyid")
    outcomes.reject(ids[out_of_range & ~no_currency], "value", value[out_of_range & ~no_currency], f"amount outside [0, {MAX_AMOUNT}]", "value:range")
    keep = value.notna().to_numpy() & ~no_currency & ~out_of_range
    values = common.plain_series([float(v) if k else None for v, k in zip(value, keep, strict=True)], opportunities.index)
    return values, currency


def probability(opportunities: pd.DataFrame, ids: pd.Series, outcomes: Outcomes) -> pd.Series:
    numbers = pd.to_numeric(opportunities["closeprobability"], errors="coerce").astype(float)
    bad = (numbers.notna() & ((numbers < 0) | (numbers > 100))).to_numpy()
    outcomes.reject(ids[bad], "probability", numbers[bad], "probability outside [0, 100]", "probability:closeprobability")
    return common.plain_series([None if np.isnan(v) or b else int(v) for v, b in zip(numbers, bad, strict=True)], opportunities.index)
