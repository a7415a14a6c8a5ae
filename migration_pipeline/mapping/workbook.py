"""An object's workbook file from the proposer: one entry per source column, none dropped silently.

A new file starts from the shipped default map (the standard fields this project knows how to
carry) and gets an entry for every other column of the table, as the proposer suggests it.
An existing file is never rewritten, since it may hold a person's edits and comments: columns
that appeared since it was written (a new custom field) are appended at its end, which is
where `fields:`, the last key, takes new entries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from migration_pipeline.mapping.proposer import FieldProposal, SourceAttribute, map_options, propose_object
from migration_pipeline.mapping.spec import FieldMap, ObjectMap, write_model

ENTRY = re.compile(r"^( *)- source:", re.MULTILINE)
HEADER = (
    "# Dynamics {entity_set} -> Pipedrive {object}, one entry per Dynamics column.\n"
    "# status: mapped | needs_decision (carried to the proposed default until you change it) | not_migrated.\n"
    "# `target` is a standard Pipedrive field, `custom_field` one that provisioning creates; `notes` says why.\n"
    "# The \"Dynamics ID\" custom field is always added: it makes loads idempotent and verifiable.\n"
)


def source_attributes(schema_attributes: pd.DataFrame, entity: str) -> list[SourceAttribute]:
    """The columns of `entity` as the proposer reads them, from `raw.schema_attributes`."""
    rows = schema_attributes[(schema_attributes["entity"] == entity) & schema_attributes["is_valid_for_read"].fillna(True).astype(bool)]
    out: list[SourceAttribute] = []
    for row in rows.itertuples():
        options = json.loads(row.options) if isinstance(row.options, str) and row.options else []
        out.append(
            SourceAttribute(
                entity=entity,
                logical_name=row.logical_name,
                column=row.column or "",
                attribute_type=row.attribute_type or "String",
                display_name=row.display_name if isinstance(row.display_name, str) else "",
                description=row.description if isinstance(row.description, str) else "",
                format=row.format if isinstance(row.format, str) else None,
                max_length=None if pd.isna(row.max_length) else int(row.max_length),
                options=tuple(str(option["label"]) for option in options if option.get("label")),
                targets=tuple(t for t in (row.targets or "").split("|") if t) if isinstance(row.targets, str) else (),
                is_custom=bool(row.is_custom_attribute),
                is_primary_id=bool(row.is_primary_id),
                is_primary_name=bool(row.is_primary_name),
            )
        )
    return out


def entries_for(proposals: Sequence[FieldProposal]) -> list[FieldMap]:
    """Workbook entries from proposals; columns that share one destination (an address's parts) become one entry."""
    entries: list[FieldMap] = []
    by_destination: dict[str, int] = {}
    for proposal in proposals:
        destination = proposal.target or (proposal.custom_field.name if proposal.custom_field else None)
        if destination is not None and destination in by_destination:
            index = by_destination[destination]
            merged = entries[index]
            entries[index] = merged.model_copy(update={"source": [*merged.sources, proposal.source]})
            continue
        entry = FieldMap(
            source=proposal.source,
            target=proposal.target,
            custom_field=proposal.custom_field,
            transform=proposal.transform,
            status=proposal.status,
            confidence=round(proposal.confidence, 2),
            notes=proposal.reason,
        )
        if destination is not None:
            by_destination[destination] = len(entries)
        entries.append(entry)
    return entries


def propose_object_map(
    object_name: str,
    entity_set: str,
    attributes: Sequence[SourceAttribute],
    samples: Mapping[str, pd.Series] | None = None,
    default: ObjectMap | None = None,
) -> ObjectMap:
    """The default map (if any), plus an entry for every column the default does not speak for."""
    source_key = next((a.column or a.logical_name for a in attributes if a.is_primary_id), default.source_key if default else "")
    base = default or ObjectMap(object=object_name, source_entity_set=entity_set, source_key=source_key, fields=[])
    covered = base.covered_sources
    # The proposer sees every column (it settles conflicts and currency pairs across them); the
    # default's entries stand, and only the columns it does not speak for get new entries.
    proposals = [p for p in propose_object(attributes, object_name, samples) if p.source not in covered and p.source != source_key]
    filled = {entry.destination: "/".join(entry.sources) for entry in base.carried_fields}
    added = []
    for entry in entries_for(proposals):
        if entry.carried and entry.destination in filled:  # the default already fills it: say so, drop nothing silently
            entry = entry.model_copy(update={
                "target": None, "custom_field": None, "transform": "copy", "status": "not_migrated",
                "notes": f"{entry.destination} is filled from {filled[entry.destination]}; {entry.notes}",
            })
        added.append(entry)
    return base.model_copy(update={"fields": [*base.fields, *added]})


def check_options(object_map: ObjectMap, attributes: Sequence[SourceAttribute], pipedrive_options: Mapping[str, Sequence[str]]) -> ObjectMap:
    """Mark, on each entry that fills a standard Pipedrive choice field, the Dynamics labels it has no option for."""
    labels = {a.column or a.logical_name: a.options for a in attributes}
    entries = []
    for entry in object_map.fields:
        if entry.target in pipedrive_options and entry.transform == "option_label":
            source_labels = [label for column in entry.sources for label in labels.get(column, ())]
            entry = entry.model_copy(update={"unmapped_options": map_options(source_labels, pipedrive_options[entry.target]).unmapped})
        entries.append(entry)
    return object_map.model_copy(update={"fields": entries})


def write_object_map(object_map: ObjectMap, path: Path) -> None:
    write_model(object_map, path, HEADER.format(entity_set=object_map.source_entity_set, object=object_map.object), exclude_defaults=True)


def append_entries(path: Path, entries: Sequence[FieldMap]) -> None:
    """Add entries at the end of an existing workbook file (its last key is `fields:`), keeping every comment."""
    if not entries:
        return
    dumped = yaml.safe_dump([entry.model_dump(mode="json", exclude_defaults=True) for entry in entries], sort_keys=False, allow_unicode=True, width=120)
    text = path.read_text(encoding="utf-8")
    found = ENTRY.search(text)
    indent = found.group(1) if found else ""  # the file's own indentation of `fields:` entries
    indented = "".join(indent + line if line.strip() else line for line in dumped.splitlines(keepends=True))
    note = f"{indent}# Added by `migrate plan`: columns that appeared since this file was written.\n"
    path.write_text(text.rstrip("\n") + "\n" + note + indented, encoding="utf-8")
