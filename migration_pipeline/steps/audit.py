"""Audit: what there is to move, what will not fit, and what it will cost, before anything moves.

The audit runs after schema discovery and extraction and reads only what they stored
(`raw.schema_*` and the raw tables), so it never calls Dynamics again. Each analysis is a
small pure function from DataFrames to findings rows (entity_set, kind, subject, count,
detail); `scope_findings` composes them, `render_report` turns the same rows into
`reports/scope.md`, and `audit_scope` stores both (`audit.scope` in DuckDB). The report and the
table therefore never disagree.

A finding's `count` is the number of records it concerns (rows, values filled, records owned,
tokens for the cost rows), or null where the audit could not count (a table this identity may
not read). Risk findings are only written where there is something to report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from migration_pipeline.errors import ConfigurationError
from migration_pipeline.mapping import transforms
from migration_pipeline.mapping.rules.organizations import find_cycles
from migration_pipeline.mapping.spec import load_object_map
from migration_pipeline.pipedrive.costs import Operation, operation
from migration_pipeline.steps.plan import DEFAULTS_DIR
from migration_pipeline.steps.schema import MANY_TO_MANY, Schema, read_schema
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.parquet import read_frame

log = logging.getLogger(__name__)

SCOPE_COLUMNS = ["entity_set", "kind", "subject", "count", "detail"]
SCOPE_TABLE = "audit.scope"
SCOPE_DDL = f"CREATE TABLE IF NOT EXISTS {SCOPE_TABLE} (entity_set VARCHAR, kind VARCHAR, subject VARCHAR, count BIGINT, detail VARCHAR)"
REPORT_FILE = "scope.md"

# Pipedrive refuses larger uploads. Its documentation names no limit; the sandbox takes the
# stricter reading of 50 MB, and so does the audit.
MAX_FILE_BYTES = 50 * 1024 * 1024

NOT_READABLE = "not readable by this identity"
NOT_EXTRACTED = "not extracted yet"

# Kinds of findings.
RECORDS = "records"
CUSTOM_ENTITY = "custom_entity"
CUSTOM_FIELD = "custom_field"
N_TO_N = "many_to_many"
CURRENCY = "currency"
OWNER = "owner"
TEAM_OWNED = "team_owned"
DISABLED_USER = "disabled_user"
UNKNOWN_OWNER = "unknown_owner"
CIRCULAR_CHAIN = "circular_parent_chain"
NO_ACCOUNT = "contact_without_account"
CONTACT_PARENT = "contact_parent_is_contact"
INVALID_WEBSITE = "invalid_website"
INDUSTRY = "industry_without_option"
EMPLOYEES = "employee_count_out_of_range"
MALFORMED_EMAIL = "malformed_email"
OVERSIZE = "oversize_attachment"
REBUILD = "rebuild_in_pipedrive"
TOKEN_COST = "token_cost"
TOKEN_TOTAL = "token_total"

RISK_KINDS = (CIRCULAR_CHAIN, NO_ACCOUNT, CONTACT_PARENT, INVALID_WEBSITE, INDUSTRY, EMPLOYEES, MALFORMED_EMAIL,
              OVERSIZE, DISABLED_USER, TEAM_OWNED, UNKNOWN_OWNER)

# The Dynamics tables whose records become Pipedrive records (custom entities come on top):
# their values are checked against Pipedrive's constraints and their owners counted.
MIGRATED_TABLES = ("account", "contact", "opportunity", "lead", "activitypointer", "product", "opportunityproduct", "annotation")
ACTIVITY_TABLES = ("phonecall", "email", "task", "appointment")

# Pipedrive's daily budget is 30,000 tokens x plan multiplier x seats; the burst limit is per
# API token per 2-second window. Current plans first, then the legacy ones.
BASE_DAILY_TOKENS = 30_000
PLAN_MULTIPLIERS = {"lite": 1, "growth": 2, "premium": 5, "ultimate": 7,
                    "essential": 1, "advanced": 2, "professional": 3, "power": 5, "enterprise": 7}
BURST_PER_2S = {"lite": 20, "growth": 40, "premium": 100, "ultimate": 120,
                "essential": 20, "advanced": 40, "professional": 80, "power": 100, "enterprise": 120}
DEFAULT_PLAN = "premium"
DEFAULT_SEATS = 10

# What one record of each Pipedrive object costs to create: (API version, method, path).
CREATE_OPERATIONS: dict[str, tuple[str, str, str]] = {
    "organizations": ("v2", "POST", "/organizations"),
    "organization relationships": ("v1", "POST", "/organizationRelationships"),
    "persons": ("v2", "POST", "/persons"),
    "products": ("v2", "POST", "/products"),
    "deals": ("v2", "POST", "/deals"),
    "deal products": ("v2", "POST", "/deals/{id}/products"),
    "leads": ("v1", "POST", "/leads"),
    "activities": ("v2", "POST", "/activities"),
    "notes": ("v1", "POST", "/notes"),
    "files": ("v1", "POST", "/files"),
}

# `workflows.category`, as Dataverse documents it (used where the extract has no label).
WORKFLOW_CATEGORIES = {0: "Classic workflow", 1: "Dialog", 2: "Business rule", 3: "Action", 4: "Business process flow",
                       5: "Modern flow", 6: "Desktop flow", 7: "AI flow"}
WORKFLOW_DEFINITION = 1  # `workflows.type`: 1 is the definition; 2 (activation) copies it, 3 is a template
CUSTOM_PLUGIN_STEP = 1  # `customizationlevel`: 0 is Microsoft's own step, 1 a customisation


def finding(entity_set: str, kind: str, subject: str, count: int | None, detail: str = "") -> dict[str, object]:
    return {"entity_set": entity_set, "kind": kind, "subject": subject, "count": count, "detail": detail}


def as_findings(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=SCOPE_COLUMNS)
    frame["count"] = frame["count"].astype("Int64")
    return frame


def _lower(series: pd.Series) -> pd.Series:
    """GUIDs compared case-insensitively (the Web API writes them lower-case, people don't)."""
    return series.astype("string").str.lower()


def _flag(series: pd.Series) -> pd.Series:
    """A nullable boolean column as plain booleans (unknown is false)."""
    return series.fillna(False).astype(bool)


def _names(values: Iterable[object], limit: int = 10) -> str:
    """Sorted names, the first `limit` of them: a real org has hundreds of workflows."""
    names = sorted(str(value) for value in values)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def entity_sets_of(entities: pd.DataFrame) -> dict[str, str]:
    """logical name -> entity set (the logical name itself for a table without one)."""
    return {name: entity_set if isinstance(entity_set, str) else name
            for name, entity_set in zip(entities["logical_name"], entities["entity_set_name"], strict=True)}


# --- what there is ------------------------------------------------------------------------------


def record_findings(entities: pd.DataFrame, counts: Mapping[str, int | None]) -> pd.DataFrame:
    """One `records` row per table in scope: its row count, or why there is none."""
    rows = []
    entity_sets = entity_sets_of(entities)
    for entity, may_read in zip(entities.itertuples(), _flag(entities["readable"]), strict=True):
        entity_set = entity_sets[entity.logical_name]
        count = counts.get(entity_set)
        detail = NOT_READABLE if not may_read else (NOT_EXTRACTED if count is None else "")
        rows.append(finding(entity_set, RECORDS, str(entity.logical_name), count, detail))
    return as_findings(rows)


def custom_entity_findings(entities: pd.DataFrame, counts: Mapping[str, int | None]) -> pd.DataFrame:
    """One row per custom table (N:N intersects included) with its row count."""
    rows = []
    entity_sets = entity_sets_of(entities)
    custom = entities[_flag(entities["is_custom_entity"])]
    for entity, intersect in zip(custom.itertuples(), _flag(custom["is_intersect"]), strict=True):
        name = entity.display_name if isinstance(entity.display_name, str) else entity.logical_name
        detail = f"N:N intersect table ({name})" if intersect else f"custom table {name!r}"
        entity_set = entity_sets[entity.logical_name]
        rows.append(finding(entity_set, CUSTOM_ENTITY, str(entity.logical_name), counts.get(entity_set), detail))
    return as_findings(rows)


def custom_field_findings(
    attributes: pd.DataFrame, entities: pd.DataFrame, filled: Mapping[tuple[str, str], int | None]
) -> pd.DataFrame:
    """One row per custom column: how many records have a value in it, and its type.

    `filled` maps (entity set, raw column) to the number of non-null values.
    """
    entity_sets = entity_sets_of(entities)
    custom = attributes[_flag(attributes["is_custom_attribute"])]
    rows = []
    for attribute in custom.itertuples():
        entity_set = str(entity_sets.get(attribute.entity, attribute.entity))
        kind = str(attribute.attribute_type)
        if isinstance(attribute.format, str) and attribute.format not in ("None", "Text"):
            kind += f" ({attribute.format})"
        label = attribute.display_name if isinstance(attribute.display_name, str) else attribute.logical_name
        rows.append(finding(entity_set, CUSTOM_FIELD, str(attribute.logical_name), filled.get((entity_set, str(attribute.column))),
                            f"{kind}: {label}"))
    return as_findings(rows)


def many_to_many_findings(relationships: pd.DataFrame, entities: pd.DataFrame, counts: Mapping[str, int | None]) -> pd.DataFrame:
    """One row per N:N relationship: how many links its intersect table holds."""
    entity_sets = entity_sets_of(entities)
    rows = []
    for relationship in relationships[relationships["relationship_type"] == MANY_TO_MANY].itertuples():
        entity_set = str(entity_sets.get(relationship.intersect_entity, relationship.intersect_entity))
        rows.append(finding(entity_set, N_TO_N, str(relationship.schema_name), counts.get(entity_set),
                            f"{relationship.entity1} <-> {relationship.entity2} (intersect {relationship.intersect_entity}); "
                            "kept as pipe-delimited ids in a custom field"))
    return as_findings(rows)


def currency_findings(entity_set: str, records: pd.DataFrame, currencies: pd.DataFrame) -> pd.DataFrame:
    """Records per currency (`_transactioncurrencyid_value` resolved to its ISO code), largest first."""
    codes = dict(zip(_lower(currencies["transactioncurrencyid"]), currencies["isocurrencycode"], strict=True))
    names = dict(zip(_lower(currencies["transactioncurrencyid"]), currencies.get("currencyname", currencies["isocurrencycode"]), strict=True))
    ids = _lower(records["_transactioncurrencyid_value"])
    per_currency = ids.fillna("").value_counts()
    used = len(per_currency)
    rows = []
    for currency_id, count in per_currency.items():
        code = codes.get(currency_id, "(none)" if not currency_id else f"unknown {currency_id}")
        detail = f"{names.get(currency_id, '')}; one of {used} currencies in use" if used > 1 else "the only currency in use"
        rows.append(finding(entity_set, CURRENCY, str(code), int(count), detail.lstrip("; ")))
    return as_findings(rows)


# --- owners -------------------------------------------------------------------------------------


def owner_findings(owned: Mapping[str, pd.DataFrame], users: pd.DataFrame, teams: pd.DataFrame) -> pd.DataFrame:
    """Records per owner per table, team-owned records per table, every disabled user, and owners nobody knows.

    `owned` maps an entity set to a frame with its `_ownerid_value` column; an owner is a user
    or a team by its id. A disabled user is listed even when they own nothing, so the owner map
    can account for every one.
    """
    user_ids = _lower(users["systemuserid"])
    people = {uid: (name, email, bool(disabled)) for uid, name, email, disabled in
              zip(user_ids, users["fullname"], users.get("internalemailaddress", users["fullname"]), _flag(users["isdisabled"]), strict=True)}
    team_names = dict(zip(_lower(teams["teamid"]), teams["name"], strict=True))
    rows = []
    owned_by_user: dict[str, dict[str, int]] = {}
    for entity_set, frame in owned.items():
        owners = _lower(frame["_ownerid_value"])
        counts = owners.dropna().value_counts()
        team_total = unknown_total = 0
        for owner_id, count in counts.items():
            count = int(count)
            if owner_id in people:
                name, email, disabled = people[owner_id]
                owned_by_user.setdefault(owner_id, {})[entity_set] = count
                detail = f"systemuser {name} <{email}>" + (", disabled" if disabled else "")
            elif owner_id in team_names:
                team_total += count
                detail = f"team {team_names[owner_id]}"
            else:
                unknown_total += count
                detail = "unknown owner (neither a system user nor a team)"
            rows.append(finding(entity_set, OWNER, str(owner_id), count, detail))
        if team_total:
            rows.append(finding(entity_set, TEAM_OWNED, "teams", team_total, "teams have no Pipedrive equivalent: the owner map assigns a user"))
        if unknown_total:
            rows.append(finding(entity_set, UNKNOWN_OWNER, "owners", unknown_total, "owner ids found in neither systemusers nor teams"))
    for owner_id, (name, email, disabled) in sorted(people.items(), key=lambda item: str(item[1][0])):
        if disabled:
            tables = owned_by_user.get(owner_id, {})
            spread = ", ".join(f"{entity_set} {count:,}" for entity_set, count in sorted(tables.items()))
            rows.append(finding("systemusers", DISABLED_USER, str(owner_id), sum(tables.values()),
                                f"{name} <{email}>: disabled; owns " + (spread or "nothing")))
    return as_findings(rows)


# --- relationships that will not carry ----------------------------------------------------------


def circular_chain_findings(entity_set: str, accounts: pd.DataFrame) -> pd.DataFrame:
    """One row per circular parent-account chain (a self-parent included), listing its accounts."""
    ids = _lower(accounts["accountid"])
    parents = _lower(accounts["_parentaccountid_value"])
    links = {child: (parent if isinstance(parent, str) else None) for child, parent in zip(ids, parents, strict=True)}
    names = dict(zip(ids, accounts["name"], strict=True)) if "name" in accounts else {}
    rows = []
    for cycle in find_cycles(links):
        chain = " -> ".join([*cycle, cycle[0]])
        labels = " -> ".join(str(names.get(node, node)) for node in [*cycle, cycle[0]])
        rows.append(finding(entity_set, CIRCULAR_CHAIN, chain, len(cycle),
                            f"{labels}; one link must be dropped before parent relationships load"))
    return as_findings(rows)


def contact_parent_findings(entity_set: str, contacts: pd.DataFrame) -> pd.DataFrame:
    """Contacts with no parent at all, and contacts whose parent is another contact rather than an account."""
    parent = contacts["_parentcustomerid_value"]
    table = contacts.get("_parentcustomerid_value__table", pd.Series(None, index=contacts.index, dtype=object))
    orphans = int(parent.isna().sum())
    under_contact = int((parent.notna() & (table.astype("string").str.lower() == "contact")).sum())
    rows = []
    if orphans:
        rows.append(finding(entity_set, NO_ACCOUNT, "parentcustomerid", orphans, "attached to a placeholder organization in Pipedrive"))
    if under_contact:
        rows.append(finding(entity_set, CONTACT_PARENT, "parentcustomerid", under_contact,
                            "parent is a contact: attached to that contact's organization, or the placeholder"))
    return as_findings(rows)


# --- values that will not fit -------------------------------------------------------------------


def rejected_value_findings(entity_set: str, kind: str, column: str, values: pd.Series, carried: transforms.Carried,
                            examples: int = 3) -> pd.DataFrame:
    """One row counting the values a transform refuses, with a few examples; nothing when all fit."""
    refused = carried.problems.notna()
    if not refused.any():
        return as_findings([])
    reason = str(carried.problems[refused].iloc[0])
    sample = ", ".join(repr(str(value)) for value in values[refused].drop_duplicates().head(examples))
    return as_findings([finding(entity_set, kind, column, int(refused.sum()), f"{reason}, e.g. {sample}")])


def industry_findings(entity_set: str, records: pd.DataFrame, pipedrive_options: Collection[str]) -> pd.DataFrame:
    """Industry codes in use whose label matches no option of Pipedrive's Industry field, one row per code.

    The options of a Pipedrive company's Industry field are only known once it is read (the
    plan does); with none given, every code in use needs one created or mapped.
    """
    known = {option.strip().casefold() for option in pipedrive_options}
    codes = pd.to_numeric(records["industrycode"], errors="coerce")
    labels = records.get("industrycode__label", pd.Series(None, index=records.index, dtype=object))
    used = pd.DataFrame({"code": codes, "label": labels}).dropna(subset=["code"])
    rows = []
    for (code, label), count in used.groupby(["code", "label"], dropna=False).size().sort_values(ascending=False).items():
        text = label if isinstance(label, str) else None
        if text is not None and text.strip().casefold() in known:
            continue
        rows.append(finding(entity_set, INDUSTRY, text or f"code {int(code)}", int(count),
                            f"industrycode {int(code)}" + ("" if text else ", not in the Dynamics option set")))
    return as_findings(rows)


def oversize_attachment_findings(entity_set: str, annotations: pd.DataFrame, limit: int = MAX_FILE_BYTES) -> pd.DataFrame:
    """One row per attached file larger than Pipedrive accepts: it has to be uploaded by hand."""
    sizes = pd.to_numeric(annotations["filesize"], errors="coerce")
    large = annotations[sizes > limit]
    rows = [finding(entity_set, OVERSIZE, str(row.annotationid), 1,
                    f"{row.filename!r}, {float(row.filesize) / 2**20:,.1f} MB > {limit / 2**20:,.0f} MB: upload by hand")
            for row in large.itertuples()]
    return as_findings(rows)


# --- what does not migrate ----------------------------------------------------------------------


def workflow_findings(entity_set: str, workflows: pd.DataFrame) -> pd.DataFrame:
    """Processes to rebuild in Pipedrive, one row per category (classic workflows, business rules, BPFs, actions...)."""
    if "type" in workflows:
        workflows = workflows[pd.to_numeric(workflows["type"], errors="coerce").fillna(WORKFLOW_DEFINITION) == WORKFLOW_DEFINITION]
    categories = pd.to_numeric(workflows["category"], errors="coerce")
    labels = workflows.get("category__label", pd.Series(None, index=workflows.index, dtype=object))
    active = pd.to_numeric(workflows.get("statecode", pd.Series(None, index=workflows.index)), errors="coerce") == 1
    rows = []
    for code in sorted(categories.dropna().unique()):
        members = categories == code
        label = next((str(value) for value in labels[members] if isinstance(value, str)), WORKFLOW_CATEGORIES.get(int(code), f"category {int(code)}"))
        names = _names(workflows.loc[members, "name"])
        note = " (each becomes a Pipedrive pipeline through the stage map; its logic does not)" if int(code) == 4 else ""
        rows.append(finding(entity_set, REBUILD, label, int(members.sum()),
                            f"{int((members & active).sum())} activated{note}: {names}"))
    return as_findings(rows)


def plugin_step_findings(entity_set: str, steps: pd.DataFrame | None, unavailable: str = NOT_READABLE) -> pd.DataFrame:
    """Custom plug-in steps to rebuild (as Pipedrive automations or webhooks), or why they could not be counted."""
    if steps is None:
        return as_findings([finding(entity_set, REBUILD, "Plug-in step", None, f"{unavailable}: ask an administrator for the list")])
    if "customizationlevel" in steps:
        steps = steps[pd.to_numeric(steps["customizationlevel"], errors="coerce").fillna(CUSTOM_PLUGIN_STEP) == CUSTOM_PLUGIN_STEP]
    enabled = int((pd.to_numeric(steps.get("statecode", pd.Series(0, index=steps.index)), errors="coerce") == 0).sum())
    return as_findings([finding(entity_set, REBUILD, "Plug-in step", len(steps), f"{enabled} enabled: {_names(steps['name'])}")])


# --- what it will cost in Pipedrive -------------------------------------------------------------


@dataclass(frozen=True)
class TokenEstimate:
    """Pipedrive tokens and calendar time the creates need at one plan and seat count."""

    plan: str
    seats: int
    tokens: int
    requests: int

    @property
    def daily_budget(self) -> int:
        return daily_budget(self.plan, self.seats)

    @property
    def days(self) -> float:
        """Days of the whole company budget the migration spends (other integrations share it)."""
        return self.tokens / self.daily_budget

    @property
    def calendar_days(self) -> int:
        """The budget resets once a day, so this many days at least."""
        return max(1, math.ceil(self.days))

    @property
    def burst_per_2s(self) -> int:
        return BURST_PER_2S[self.plan]

    @property
    def hours_at_burst(self) -> float:
        """Hours of writing at one API token's burst limit, the other floor on calendar time."""
        return self.requests * 2 / self.burst_per_2s / 3600

    def describe(self) -> str:
        return (f"{self.tokens:,} tokens for {self.requests:,} creates = {self.days:.2f} days of the {self.plan} budget for "
                f"{self.seats} seats ({self.daily_budget:,} tokens/day): at least {self.calendar_days} calendar "
                f"day{'s' if self.calendar_days > 1 else ''}, {self.hours_at_burst:.1f} h of writing at "
                f"{self.burst_per_2s} requests/2 s")


def daily_budget(plan: str, seats: int) -> int:
    """Pipedrive's company budget: 30,000 tokens x plan multiplier x seats."""
    if plan not in PLAN_MULTIPLIERS:
        raise ConfigurationError(f"Unknown Pipedrive plan {plan!r}.", hint=f"Use one of: {', '.join(PLAN_MULTIPLIERS)}.")
    if seats < 1:
        raise ConfigurationError(f"A Pipedrive company has at least one seat, not {seats}.", hint="Pass the number of paid seats.")
    return BASE_DAILY_TOKENS * PLAN_MULTIPLIERS[plan] * seats


def create_cost_findings(creates: Mapping[str, tuple[str, int]]) -> pd.DataFrame:
    """One `token_cost` row per Pipedrive object: records x the token cost of its create call.

    `creates` maps a Pipedrive object of `CREATE_OPERATIONS` to (source entity set, records).
    """
    rows = []
    for name, (entity_set, records) in creates.items():
        call = create_call(name)
        rows.append(finding(entity_set, TOKEN_COST, name, records * call.cost, f"{records:,} creates x {call.cost} tokens ({call.name})"))
    return as_findings(rows)


def create_call(name: str) -> Operation:
    """The priced create operation of a Pipedrive object, from the specs' `x-token-cost`."""
    version, method, path = CREATE_OPERATIONS[name]
    return operation(version, method, path)  # type: ignore[arg-type]


def token_estimate(creates: Mapping[str, tuple[str, int]], plan: str, seats: int) -> TokenEstimate:
    """What `creates` (as for `create_cost_findings`) cost at `plan` and `seats`."""
    daily_budget(plan, seats)
    tokens = sum(records * create_call(name).cost for name, (_, records) in creates.items())
    return TokenEstimate(plan=plan, seats=seats, tokens=tokens, requests=sum(records for _, records in creates.values()))


def token_total_findings(estimate: TokenEstimate) -> pd.DataFrame:
    return as_findings([finding("", TOKEN_TOTAL, f"{estimate.plan}, {estimate.seats} seats", estimate.tokens, estimate.describe())])


# --- composition --------------------------------------------------------------------------------


class RawTables:
    """The extracted raw tables, read lazily: row counts from Parquet metadata, only the columns asked for."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def exists(self, entity_set: str) -> bool:
        return any(self.warehouse.raw_path(entity_set).glob("*.parquet"))

    def count(self, entity_set: str) -> int | None:
        return ds.dataset(self.warehouse.raw_path(entity_set), format="parquet").count_rows() if self.exists(entity_set) else None

    def read(self, entity_set: str | None, columns: list[str]) -> pd.DataFrame | None:
        """The named columns (absent ones as nulls), or None when the table was never extracted."""
        if entity_set is None or not self.exists(entity_set):
            return None
        path = self.warehouse.raw_path(entity_set)
        present = set(ds.dataset(path, format="parquet").schema.names)
        return read_frame(path, [column for column in columns if column in present]).reindex(columns=columns)


def employee_count_range() -> tuple[float | None, float | None]:
    """The range the shipped organizations map accepts for `numberofemployees` (Pipedrive's employee_count)."""
    object_map = load_object_map(DEFAULTS_DIR / "organizations.yaml")
    field = next(f for f in object_map.fields if f.sources == ["numberofemployees"])
    return field.min_value, field.max_value


def scope_findings(
    schema: Schema,
    raw: RawTables,
    *,
    plan: str = DEFAULT_PLAN,
    seats: int = DEFAULT_SEATS,
    industry_options: Collection[str] = (),
) -> tuple[pd.DataFrame, TokenEstimate]:
    """Every finding of the audit, from the stored schema and the raw tables, and the token estimate."""
    daily_budget(plan, seats)  # an unknown plan fails before any work
    entities = schema.entities
    readable = dict(zip(entities["logical_name"], _flag(entities["readable"]), strict=True))
    sets = {name: str(entity_set) for name, entity_set in zip(entities["logical_name"], entities["entity_set_name"], strict=True)
            if isinstance(entity_set, str)}
    counts = {entity_set: raw.count(entity_set) for name, entity_set in sets.items() if readable[name]}
    custom_tables = list(entities.loc[_flag(entities["is_custom_entity"]), "logical_name"])
    migrated = [name for name in (*MIGRATED_TABLES, *custom_tables) if name in sets]
    attributes = schema.attributes
    parts = [
        record_findings(entities, counts),
        custom_entity_findings(entities, counts),
        custom_field_findings(attributes, entities, filled_values(raw, attributes, sets)),
        many_to_many_findings(schema.relationships, entities, counts),
    ]
    log.info("audit: counts, custom entities and fields done")

    currencies = raw.read(sets.get("transactioncurrency"), ["transactioncurrencyid", "isocurrencycode", "currencyname"])
    for name in ("account", "opportunity"):
        records = raw.read(sets.get(name), ["_transactioncurrencyid_value"])
        if records is not None and currencies is not None:
            parts.append(currency_findings(sets[name], records, currencies))

    users = raw.read(sets.get("systemuser"), ["systemuserid", "fullname", "internalemailaddress", "isdisabled"])
    teams = raw.read(sets.get("team"), ["teamid", "name"])
    owner_tables = set(attributes.loc[attributes["attribute_type"] == "Owner", "entity"])
    owned = {sets[name]: frame for name in migrated if name in owner_tables
             for frame in [raw.read(sets[name], ["_ownerid_value"])] if frame is not None}
    if users is not None and teams is not None:
        parts.append(owner_findings(owned, users, teams))
    log.info("audit: currencies and owners done")

    accounts = raw.read(sets.get("account"), ["accountid", "name", "_parentaccountid_value", "websiteurl", "industrycode",
                                               "industrycode__label", "numberofemployees"])
    if accounts is not None:
        parts.append(circular_chain_findings(sets["account"], accounts))
        parts.append(industry_findings(sets["account"], accounts, industry_options))
        low, high = employee_count_range()
        employees = accounts["numberofemployees"]
        parts.append(rejected_value_findings(sets["account"], EMPLOYEES, "numberofemployees", employees,
                                             transforms.integer(employees, low, high)))
    contacts = raw.read(sets.get("contact"), ["_parentcustomerid_value", "_parentcustomerid_value__table"])
    if contacts is not None:
        parts.append(contact_parent_findings(sets["contact"], contacts))
    parts.append(format_findings(raw, attributes, sets, migrated))
    annotations = raw.read(sets.get("annotation"), ["annotationid", "filename", "filesize", "isdocument", "notetext"])
    if annotations is not None:
        parts.append(oversize_attachment_findings(sets["annotation"], annotations))
    log.info("audit: risks done")

    workflows = raw.read(sets.get("workflow"), ["name", "category", "category__label", "type", "statecode"])
    if workflows is not None:
        parts.append(workflow_findings(sets["workflow"], workflows))
    if "sdkmessageprocessingstep" in readable:
        may_read = readable["sdkmessageprocessingstep"]
        steps = raw.read(sets.get("sdkmessageprocessingstep"), ["name", "statecode", "customizationlevel"]) if may_read else None
        reason = NOT_EXTRACTED if may_read else NOT_READABLE
        parts.append(plugin_step_findings(sets.get("sdkmessageprocessingstep", "sdkmessageprocessingsteps"), steps, reason))

    creates = planned_creates(raw, sets, counts, accounts, annotations)
    estimate = token_estimate(creates, plan, seats)
    parts += [create_cost_findings(creates), token_total_findings(estimate)]
    return pd.concat([part for part in parts if len(part)], ignore_index=True), estimate


def filled_values(raw: RawTables, attributes: pd.DataFrame, sets: Mapping[str, str]) -> dict[tuple[str, str], int | None]:
    """(entity set, column) -> non-null values, for every custom column of an extracted table."""
    filled: dict[tuple[str, str], int | None] = {}
    custom = attributes[_flag(attributes["is_custom_attribute"])]
    for entity, columns in custom.groupby("entity")["column"]:
        frame = raw.read(sets.get(str(entity)), [str(column) for column in columns])
        if frame is not None:
            for column, count in frame.notna().sum().items():
                filled[(sets[str(entity)], str(column))] = int(count)
    return filled


def format_findings(raw: RawTables, attributes: pd.DataFrame, sets: Mapping[str, str], migrated: list[str]) -> pd.DataFrame:
    """Website URLs and email addresses (columns the schema formats as Url or Email) that Pipedrive would refuse."""
    checks = {"Url": (INVALID_WEBSITE, transforms.url), "Email": (MALFORMED_EMAIL, transforms.email)}
    parts = []
    formatted = attributes[attributes["format"].isin(list(checks)) & attributes["entity"].isin(migrated)]
    for entity, group in formatted.groupby("entity", sort=False):
        frame = raw.read(sets[str(entity)], list(group["column"]))
        if frame is None:
            continue
        for column, fmt in zip(group["column"], group["format"], strict=True):
            kind, check = checks[str(fmt)]
            parts.append(rejected_value_findings(sets[str(entity)], kind, str(column), frame[column], check(frame[column])))
    return pd.concat(parts, ignore_index=True) if parts else as_findings([])


def planned_creates(
    raw: RawTables,
    sets: Mapping[str, str],
    counts: Mapping[str, int | None],
    accounts: pd.DataFrame | None,
    annotations: pd.DataFrame | None,
) -> dict[str, tuple[str, int]]:
    """Records per Pipedrive object the load will create, from the raw tables: the floor of the token cost.

    Qualified leads become their deal, not a lead; a note carries an annotation's text, a file
    its attachment when Pipedrive accepts its size; parent links are one relationship each.
    """

    def count(name: str) -> int:
        return counts.get(sets.get(name, ""), None) or 0

    creates: dict[str, tuple[str, int]] = {}
    if "account" in sets:
        creates["organizations"] = (sets["account"], count("account"))
        parents = 0 if accounts is None else int(accounts["_parentaccountid_value"].notna().sum())
        creates["organization relationships"] = (sets["account"], parents)
    for obj, name in (("persons", "contact"), ("products", "product"), ("deals", "opportunity"), ("deal products", "opportunityproduct")):
        if name in sets:
            creates[obj] = (sets[name], count(name))
    leads = raw.read(sets.get("lead"), ["statecode"])
    if leads is not None:
        creates["leads"] = (sets["lead"], int((pd.to_numeric(leads["statecode"], errors="coerce") != 1).sum()))
    if any(name in sets for name in ACTIVITY_TABLES):
        creates["activities"] = (sets.get("activitypointer", "activitypointers"), sum(count(name) for name in ACTIVITY_TABLES))
    if annotations is not None:
        text = annotations["notetext"].astype("string").str.strip().fillna("") != ""
        sizes = pd.to_numeric(annotations["filesize"], errors="coerce").fillna(0)
        files = _flag(annotations["isdocument"]) & (sizes <= MAX_FILE_BYTES)
        creates["notes"] = (sets["annotation"], int(text.sum()))
        creates["files"] = (sets["annotation"], int(files.sum()))
    return creates


# --- the report ---------------------------------------------------------------------------------


def summarize(findings: pd.DataFrame) -> pd.DataFrame:
    """Per kind of finding: how many rows, and the records they add up to."""
    grouped = findings.groupby("kind", sort=False).agg(findings=("subject", "size"), records=("count", "sum"))
    return grouped.reset_index()


def _table(frame: pd.DataFrame, columns: Sequence[tuple[str, str]], empty: str = "None found.") -> str:
    """`frame` as a Markdown table of (column, header) in that order; counts grouped by thousands, unknown as `-`."""
    if frame.empty:
        return empty
    shown = pd.DataFrame({header: frame[column].to_numpy() for column, header in columns})
    for column, header in columns:
        if column in ("count", "records"):
            shown[header] = [f"{int(v):,}" if pd.notna(v) else "-" for v in frame[column]]
    return shown.to_markdown(index=False)


def owner_table(owners: pd.DataFrame) -> str:
    """Records per owner (rows) and table (columns), largest owner first."""
    if owners.empty:
        return "None found."
    pivot = owners.pivot_table(index="detail", columns="entity_set", values="count", aggfunc="sum", fill_value=0)
    pivot["total"] = pivot.sum(axis=1)
    pivot = pivot.sort_values("total", ascending=False).astype(int)
    return pivot.rename_axis("owner").reset_index().to_markdown(index=False)


def render_report(findings: pd.DataFrame, estimate: TokenEstimate, at: datetime) -> str:
    """The scope report in Markdown: every section is a view of the findings rows."""

    def of(*kinds: str) -> pd.DataFrame:
        return findings[findings["kind"].isin(kinds)]

    def columns(subject: str, count: str = "records", detail: str = "detail", kind: bool = False) -> list[tuple[str, str]]:
        return [("entity_set", "table"), *([("kind", "finding")] if kind else []), ("subject", subject), ("count", count), ("detail", detail)]

    records = of(RECORDS)
    extracted = records["count"].dropna()
    sections = [
        f"# Scope report\n\n{at:%Y-%m-%d %H:%M} UTC. {len(records)} tables in scope, {int(extracted.sum()):,} records in "
        f"{len(extracted)} extracted tables. Every row below is also in `{SCOPE_TABLE}` (DuckDB).",
        "## Summary\n\n" + _table(summarize(findings), [("kind", "kind"), ("findings", "findings"), ("records", "records")]),
        "## Records per table\n\n" + _table(records, columns("logical name", detail="note")),
        "## Custom tables\n\n" + _table(of(CUSTOM_ENTITY), columns("logical name")),
        "## Custom fields\n\nRecords with a value in each custom column.\n\n" + _table(of(CUSTOM_FIELD), columns("column", detail="type: label")),
        "## N:N relationships\n\n" + _table(of(N_TO_N), columns("relationship", count="links")),
        "## Currencies\n\nPipedrive keeps one currency per value: revenue is consolidated, with the original currency and "
        "rate kept in custom fields.\n\n" + _table(of(CURRENCY), columns("currency")),
        "## Owners\n\nRecords per owner. `migrate plan` matches owners to Pipedrive users by email; teams, disabled and "
        "unmatched users go to the fallback user once confirmed.\n\n" + owner_table(of(OWNER))
        + "\n\n" + _table(of(DISABLED_USER, TEAM_OWNED, UNKNOWN_OWNER), columns("subject", kind=True), empty=""),
        "## Risks\n\n" + _table(summarize(of(*RISK_KINDS)), [("kind", "finding"), ("findings", "rows"), ("records", "records")]),
        "### Circular parent-account chains\n\nEach loop is listed once, from its smallest id. Pipedrive's parent link is one "
        "level deep and cannot loop: one link of each must go.\n\n"
        + _table(of(CIRCULAR_CHAIN), columns("chain", count="accounts")),
        "### Contacts without an account\n\n" + _table(of(NO_ACCOUNT, CONTACT_PARENT), columns("column", kind=True)),
        "### Values Pipedrive will refuse\n\nThe transforms reject these values field by field (into `staged.rejects`); "
        "the record itself still migrates.\n\n" + _table(of(INVALID_WEBSITE, MALFORMED_EMAIL, EMPLOYEES), columns("column", kind=True)),
        "### Industry codes with no Pipedrive option\n\nEach needs an option of Pipedrive's Industry field (created or "
        "mapped in the plan).\n\n" + _table(of(INDUSTRY), columns("industry")),
        f"### Attachments over Pipedrive's {MAX_FILE_BYTES // 2**20} MB file limit\n\n" + _table(of(OVERSIZE), columns("annotation", count="files")),
        "## Not migrated: rebuild in Pipedrive\n\nAutomation does not move; each of these is rebuilt by hand (Pipedrive "
        "automations, webhooks, pipelines).\n\n" + _table(of(REBUILD), columns("process kind", count="items")),
        "## Pipedrive token cost and calendar time\n\nThe floor: one create per record, priced by Pipedrive's own "
        "`x-token-cost`; reads, retries and other integrations sharing the budget come on top.\n\n"
        + _table(of(TOKEN_COST), columns("Pipedrive object", count="tokens")) + f"\n\n**Total: {estimate.describe()}.**",
    ]
    return "\n\n".join(sections) + "\n"


def write_findings(warehouse: Warehouse, findings: pd.DataFrame) -> None:
    with warehouse.connect() as con:
        con.execute(SCOPE_DDL)
    warehouse.replace_rows(SCOPE_TABLE, findings)


def read_findings(warehouse: Warehouse) -> pd.DataFrame:
    with warehouse.connect() as con:
        con.execute(SCOPE_DDL)
    return warehouse.query(f"SELECT * FROM {SCOPE_TABLE}")


@dataclass
class AuditResult:
    findings: pd.DataFrame
    estimate: TokenEstimate
    report: Path

    @property
    def summary(self) -> pd.DataFrame:
        return summarize(self.findings)


def audit_scope(
    warehouse: Warehouse,
    *,
    plan: str = DEFAULT_PLAN,
    seats: int = DEFAULT_SEATS,
    industry_options: Collection[str] = (),
    at: datetime | None = None,
) -> AuditResult:
    """Audit the discovered schema and the extracted tables -> `audit.scope` and `reports/scope.md`."""
    findings, estimate = scope_findings(read_schema(warehouse), RawTables(warehouse), plan=plan, seats=seats,
                                        industry_options=industry_options)
    write_findings(warehouse, findings)
    path = warehouse.reports_dir / REPORT_FILE
    path.write_text(render_report(findings, estimate, at or datetime.now(UTC)), encoding="utf-8")
    log.info("audit: %d findings -> %s", len(findings), path)
    return AuditResult(findings, estimate, path)


def summary_lines(findings: pd.DataFrame, brief: bool = False) -> list[str]:
    """A few lines for the terminal: records per table, each risk with its count, the token estimate
    (`brief`: a line each for the tables, the risks, what to rebuild and the tokens)."""
    records = findings[findings["kind"] == RECORDS]
    if brief:
        risks = summarize(findings[findings["kind"].isin(RISK_KINDS)])
        rebuild = findings[findings["kind"] == REBUILD]
        lines = [f"{len(records)} tables, {int(records['count'].fillna(0).sum()):,} records "
                 f"({int((findings['kind'] == CUSTOM_ENTITY).sum())} custom tables, {int((findings['kind'] == CUSTOM_FIELD).sum())} custom fields)",
                 f"{len(risks)} kinds of risk over {int(risks['records'].sum()) if len(risks) else 0:,} records "
                 f"({', '.join(str(kind).replace('_', ' ') for kind in risks['kind'][:3])}{', ...' if len(risks) > 3 else ''})",
                 "rebuild in Pipedrive, not migrated: " + ", ".join(
                     f"{row.subject} {int(row.count) if pd.notna(row.count) else '(not readable)'}" for row in rebuild.itertuples())]
        return lines + [f"Pipedrive: {row.detail}" for row in findings[findings["kind"] == TOKEN_TOTAL].itertuples()]
    lines = []
    width = max((len(str(s)) for s in records["entity_set"]), default=0)
    for row in records.itertuples():
        amount = f"{int(row.count):>9,} records" if pd.notna(row.count) else f"{'-':>9} ({row.detail})"
        lines.append(f"{row.entity_set:<{width}} {amount}")
    custom = findings[findings["kind"] == CUSTOM_FIELD]
    tables = findings[findings["kind"] == CUSTOM_ENTITY]
    lines.append(f"{len(tables)} custom tables, {len(custom)} custom fields, "
                 f"{int((findings['kind'] == N_TO_N).sum())} N:N relationships.")
    for row in summarize(findings[findings["kind"].isin(RISK_KINDS)]).itertuples():
        lines.append(f"risk {row.kind.replace('_', ' ')}: {int(row.records):,} records in {row.findings} finding(s)")
    for row in findings[findings["kind"] == REBUILD].itertuples():
        amount = f"{int(row.count):,}" if pd.notna(row.count) else NOT_READABLE
        lines.append(f"rebuild in Pipedrive: {row.subject}: {amount}")
    for row in findings[findings["kind"] == TOKEN_TOTAL].itertuples():
        lines.append(f"Pipedrive: {row.detail}")
    return lines

