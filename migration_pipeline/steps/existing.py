"""Records that existed in Pipedrive before the migration: found, matched and linked, never duplicated.

The target Pipedrive account may already hold some of the people and companies the migration
brings over. Before creating anything, the loader links the staged rows still to create to
such records, by one stated rule, and then leaves those records alone.

The rule (`MatchRule`, from the settings `MIGRATION_MATCH_PERSONS` and
`MIGRATION_MATCH_ORGANIZATIONS`):

- **persons** (`email`, the default, or `none`): a contact matches a person when any of the
  contact's emails equals any of the person's, trimmed and case-folded.
- **organizations** (`name`, the default, `name_and_domain`, or `none`): an account matches an
  organization with the same normalised name (Unicode NFKC, case-folded, runs of whitespace
  collapsed to one space, trimmed; "ACME  gmbh" matches "Acme GmbH", "Acme" does not match
  "Acme GmbH"). With `name_and_domain` the website domains must agree too (host name,
  lower-cased, without `www.`, port or path; "https://www.acme.com/de" matches "acme.com"), and
  both sides must have a website: a name alone is not enough evidence then.
- `none` links nothing: every staged row is created.
- Only persons and organizations are matched; deals, products and the rest are always created.

Which records are candidates: every live record of the object, read through list pages (10
tokens per 500 rows; never a search or a per-record GET), except those carrying a value in the
"Dynamics ID" custom field: those are the migration's own, and the loader's read-back links
them. Records already linked to another source row (in `idmap.<object>`) are taken.

Ambiguity is never guessed away: a staged row that matches two or more records, or a record
that two or more staged rows (or an earlier link) match, stays unlinked, is logged as a warning,
and the loader creates the row as a new record.

What a link means: the pair goes into `idmap.<object>` (so every later step resolves references
to the pre-existing record, and a re-run skips the row) and into `idmap.existing` (object,
source_id, pipedrive_id, matched_on, run_id, linked_at), which tells every later step that the
record pre-dates the migration: the loader never updates (links included) or deletes it, the
journal holds no write to it (so a rollback has nothing of it to undo), and verify counts it as
"(linked existing)" instead of diffing the Dynamics values it was never given. `idmap.existing` is written before `idmap.<object>`, so
a crash between the two leaves a row that is simply linked again on the next run; `existing_ids`
only trusts rows both tables agree on.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from pydantic import BaseModel, ConfigDict

from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.settings import OrganizationMatch, PersonMatch, Settings
from migration_pipeline.steps.objects import MigratedObject
from migration_pipeline.warehouse.catalog import Warehouse

log = logging.getLogger(__name__)

EXISTING_TABLE = "idmap.existing"
EXISTING_COLUMNS = [
    "object", "source_id", "pipedrive_id", "matched_on", "run_id", "linked_at",
]
_EXISTING_DDL = (
    "object VARCHAR, source_id VARCHAR, pipedrive_id VARCHAR, matched_on VARCHAR, run_id VARCHAR, linked_at TIMESTAMPTZ"
)
# Ambiguities logged one by one before the rest are only counted.
LOGGED_AMBIGUITIES = 20


class MatchRule(BaseModel):
    """How staged rows are matched to records the Pipedrive account held before the migration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    persons: PersonMatch = "email"
    organizations: OrganizationMatch = "name"

    @classmethod
    def from_settings(cls, settings: Settings) -> MatchRule:
        return cls(persons=settings.migration_match_persons, organizations=settings.migration_match_organizations)

    def for_object(self, object_name: str) -> str:
        """The rule for one object: "none" for every object that is not matched."""
        if object_name == "persons":
            return self.persons
        if object_name == "organizations":
            return self.organizations
        return "none"

    def describe(self) -> str:
        return f"persons by {self.persons}, organizations by {self.organizations}"


# --- normalisation --------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if not isinstance(value, str):
        return None
    return value


def normalize_email(value: Any) -> str | None:
    """An email as compared: trimmed and case-folded; None when empty or not an address."""
    text = _text(value)
    if text is None:
        return None
    text = text.strip().casefold()
    return text if "@" in text else None


def normalize_name(value: Any) -> str | None:
    """A name as compared: NFKC, case-folded, whitespace runs collapsed to one space, trimmed."""
    text = _text(value)
    if text is None:
        return None
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return text or None


def website_domain(value: Any) -> str | None:
    """The host of a website, lower-cased, without `www.`, port, path or trailing dot."""
    text = _text(value)
    if text is None or not text.strip():
        return None
    text = text.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".").lower()
    if host.startswith("www."):
        host = host[4:]
    return host if "." in host else None


def _emails(value: Any) -> list[Any]:
    """The email values of a staged or Pipedrive `emails` field (list or array of {value,...}, or strings)."""
    if value is None or isinstance(value, (str, bytes, float, int, bool)):
        return [value] if isinstance(value, str) else []
    try:
        items = list(value)
    except TypeError:
        return []
    return [item.get("value") if isinstance(item, Mapping) else item for item in items]


def match_keys(object_name: str, record: Mapping[str, Any], rule: MatchRule) -> set[str]:
    """The keys a staged row or a Pipedrive record is matched on under `rule` (the same for both sides)."""
    mode = rule.for_object(object_name)
    if mode == "email":
        return {f"email:{email}" for email in map(normalize_email, _emails(record.get("emails"))) if email}
    if mode in ("name", "name_and_domain"):
        name = normalize_name(record.get("name"))
        if name is None:
            return set()
        if mode == "name":
            return {f"name:{name}"}
        domain = website_domain(record.get("website"))
        return {f"name_and_domain:{name}|{domain}"} if domain else set()
    return set()


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    source_id: str
    pipedrive_id: str
    matched_on: str


@dataclass
class Matching:
    links: dict[str, Link] = field(default_factory=dict)  # source id -> link
    ambiguous: list[str] = field(default_factory=list)  # one sentence per unlinked ambiguity

    @property
    def ids(self) -> dict[str, str]:
        return {source_id: link.pipedrive_id for source_id, link in self.links.items()}


def match_records(
    object_name: str,
    rows: Iterable[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    rule: MatchRule,
    taken: Mapping[str, str] | None = None,
) -> Matching:
    """Match staged rows (with `source_id`) to candidate Pipedrive records (with `id`), one to one.

    `taken` is Pipedrive id -> source id of records already linked: a row matching one of them
    is ambiguous (two source rows for one record). Pure: no I/O.
    """
    matching = Matching()
    if rule.for_object(object_name) == "none":
        return matching
    index: dict[str, set[str]] = {}
    for record in records:
        for key in match_keys(object_name, record, rule):
            index.setdefault(key, set()).add(str(record["id"]))
    if not index:
        return matching

    claims: dict[str, list[tuple[str, str]]] = {}  # pipedrive id -> [(source id, key)]
    for row in rows:
        source_id = str(row["source_id"])
        keys = sorted(match_keys(object_name, row, rule))
        hits: dict[str, str] = {}
        for key in keys:
            for pipedrive_id in index.get(key, ()):
                hits.setdefault(pipedrive_id, key)
        if len(hits) > 1:
            matching.ambiguous.append(
                f"{object_name} {source_id} matches {len(hits)} existing records "
                f"({', '.join(sorted(hits, key=_id_order))}) on {', '.join(sorted(set(hits.values())))}: not linked, it will be created")
        elif hits:
            ((pipedrive_id, key),) = hits.items()
            claims.setdefault(pipedrive_id, []).append((source_id, key))

    taken = taken or {}
    for pipedrive_id, claimants in claims.items():
        holder = taken.get(pipedrive_id)
        if holder is not None:
            matching.ambiguous.append(
                f"{object_name} {', '.join(s for s, _ in claimants)} match{'es' if len(claimants) == 1 else ''} existing record "
                f"{pipedrive_id} on {claimants[0][1]}, which is already linked to {holder}: not linked, created instead")
        elif len(claimants) > 1:
            matching.ambiguous.append(
                f"{object_name} {', '.join(s for s, _ in claimants)} all match existing record {pipedrive_id} on "
                f"{', '.join(sorted({k for _, k in claimants}))}: none is linked, each will be created")
        else:
            ((source_id, key),) = claimants
            matching.links[source_id] = Link(source_id, pipedrive_id, key)
    return matching


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (0, value)


# --- durable links --------------------------------------------------------------------------


def _ensure_existing(con: Any) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS idmap")
    con.execute(f"CREATE TABLE IF NOT EXISTS {EXISTING_TABLE} ({_EXISTING_DDL})")


def record_links(warehouse: Warehouse, object_name: str, links: Iterable[Link], run_id: str) -> None:
    """Record links in `idmap.existing`, then in `idmap.<object>` (that order: see the module docstring)."""
    links = list(links)
    if not links:
        return
    frame = pd.DataFrame(
        {
            "object": object_name,
            "source_id": [link.source_id for link in links],
            "pipedrive_id": [link.pipedrive_id for link in links],
            "matched_on": [link.matched_on for link in links],
            "run_id": run_id,
            "linked_at": datetime.now(UTC),
        },
        columns=EXISTING_COLUMNS,
    )
    with warehouse.connect() as con:
        _ensure_existing(con)
    warehouse.replace_rows(EXISTING_TABLE, frame, where="object = ? AND source_id IN (SELECT unnest(?))",
                           params=[object_name, list(frame["source_id"])])
    warehouse.record_ids(object_name, {link.source_id: link.pipedrive_id for link in links}, run_id)


def existing_links(warehouse: Warehouse, object_name: str) -> dict[str, str]:
    """Source id -> Pipedrive id of the rows linked to records that existed before the migration.

    Only links both `idmap.existing` and `idmap.<object>` agree on: a row linked and later
    created otherwise (or whose link was never completed) is not counted as pre-existing.
    """
    idmap = warehouse.idmap(object_name)
    with warehouse.connect() as con:
        _ensure_existing(con)
        pairs = con.execute(f"SELECT source_id, pipedrive_id FROM {EXISTING_TABLE} WHERE object = ?", [object_name]).fetchall()
    return {str(source_id): str(pipedrive_id) for source_id, pipedrive_id in pairs if idmap.get(str(source_id)) == str(pipedrive_id)}


def existing_ids(warehouse: Warehouse, object_name: str) -> set[str]:
    """Source ids linked to records that existed before the migration (never modified by it)."""
    return set(existing_links(warehouse, object_name))


# --- the step -------------------------------------------------------------------------------


async def candidate_records(client: PipedriveClient, resource: str, dynamics_id_key: str) -> list[dict[str, Any]]:
    """Every live record of `resource` that does not carry a "Dynamics ID" (list pages only)."""
    candidates = []
    async for record in client.iter_v2(resource, params={"custom_fields": dynamics_id_key}):
        if record.get("is_deleted"):
            continue
        if (record.get("custom_fields") or {}).get(dynamics_id_key) not in (None, ""):
            continue
        candidates.append(record)
    return candidates


async def link_existing(
    client: PipedriveClient,
    warehouse: Warehouse,
    item: MigratedObject,
    staged: pd.DataFrame,
    dynamics_id_key: str,
    rule: MatchRule,
    run_id: str,
) -> dict[str, str]:
    """Link staged rows to the records Pipedrive held before the migration; return source id -> Pipedrive id.

    `staged` is the rows still to create (rows already in `idmap.<object>` are skipped anyway).
    Reads `item.resource` once through list pages; writes nothing to Pipedrive.
    """
    if rule.for_object(item.name) == "none" or staged.empty:
        return {}
    known = warehouse.idmap(item.name)
    rows = staged[~staged["source_id"].astype(str).isin(known)]
    if rows.empty:
        return {}
    columns = [column for column in ("source_id", "name", "website", "emails") if column in rows.columns]
    records = await candidate_records(client, item.resource, dynamics_id_key)
    taken = {pipedrive_id: source_id for source_id, pipedrive_id in known.items()}
    matching = match_records(item.name, rows[columns].to_dict("records"), records, rule, taken)
    for line in matching.ambiguous[:LOGGED_AMBIGUITIES]:
        log.warning("existing records: %s", line)
    if len(matching.ambiguous) > LOGGED_AMBIGUITIES:
        log.warning("existing records: %d more ambiguous %s matches left unlinked",
                    len(matching.ambiguous) - LOGGED_AMBIGUITIES, item.name)
    record_links(warehouse, item.name, matching.links.values(), run_id)
    log.info("existing records: %d %s linked to records that existed before the migration (rule: %s by %s; "
             "%d candidates, %d ambiguous left unlinked)", len(matching.links), item.name, item.name,
             rule.for_object(item.name), len(records), len(matching.ambiguous))
    return matching.ids
