"""The custom-field registry: field names -> Pipedrive field codes, created when missing.

Custom-field keys are random 40-hex codes, different in every company, so the loader looks
them up by name at start-up and creates the ones the plan needs. Lookups are by exact name;
a field that exists with the wanted name and type is reused (so provisioning is idempotent),
one with the same name but another type is an error, because two fields sharing a name would
make every later lookup ambiguous.

Leads have no fields of their own: they inherit the deal fields (read through v1
`leadFields`), so `ensure("lead", ...)` provisions the deal field.
"""

from __future__ import annotations

import asyncio
from typing import Any

from migration_pipeline.errors import ConfigurationError
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.pipedrive.errors import WriteInDoubt
from migration_pipeline.pipedrive.models import FieldDefinition, FieldOption

ENTITIES = ("deal", "person", "organization", "product", "activity", "project", "lead")
OPTION_TYPES = frozenset({"enum", "set"})


WRITE_ATTEMPTS = 3  # a write Pipedrive proved it had not applied is sent again, this many times in all


class CustomFieldRegistry:
    """Field definitions per entity, loaded once and kept current as fields are created."""

    def __init__(self, client: PipedriveClient) -> None:
        self.client = client
        self._fields: dict[str, list[FieldDefinition]] = {}
        self._lock = asyncio.Lock()

    async def fields(self, entity: str) -> list[FieldDefinition]:
        """Every field of `entity` (system and custom), from cache after the first call."""
        _check(entity)
        if entity not in self._fields:
            if entity == "lead":
                rows = [row async for row in self.client.iter_v1("leadFields")]
                self._fields[entity] = [FieldDefinition.from_v1(row) for row in rows]
            else:
                rows = [row async for row in self.client.iter_v2(f"{entity}Fields")]
                self._fields[entity] = [FieldDefinition.model_validate(row) for row in rows]
        return self._fields[entity]

    async def find(self, entity: str, name: str) -> FieldDefinition | None:
        """The field named `name` (custom fields first: Contact Sync fields may share names)."""
        matches = [field for field in await self.fields(entity) if field.field_name == name]
        matches.sort(key=lambda field: not field.is_custom_field)
        return matches[0] if matches else None

    async def code(self, entity: str, name: str) -> str:
        """The field code of an existing field; `KeyError` when there is none."""
        field = await self.find(entity, name)
        if field is None:
            raise KeyError(f"{entity} has no field named {name!r}")
        return field.field_code

    async def ensure(self, entity: str, name: str, field_type: str, options: list[str] | None = None) -> str:
        """The code of the custom field `name`, created (or given missing options) when needed."""
        if entity == "lead":
            code = await self.ensure("deal", name, field_type, options)
            self._fields.pop("lead", None)
            return code
        async with self._lock:  # concurrent callers must not create the same field twice
            field = await self.find(entity, name)
            if field is None:
                field = await self._create(entity, name, field_type, options)
            elif field.field_type != field_type:
                raise ConfigurationError(
                    f"The Pipedrive {entity} field {name!r} exists with type {field.field_type!r}, not {field_type!r}.",
                    hint="Rename or delete the existing field in Pipedrive, or change the type in the mapping.",
                )
            elif field_type in OPTION_TYPES and options:
                await self._add_options(entity, field, options)
            return field.field_code

    async def _create(self, entity: str, name: str, field_type: str, options: list[str] | None) -> FieldDefinition:
        """Create the field; a create left in doubt is settled by re-reading the fields (they are found by name)
        and sent again only when the re-read proves it was not applied."""
        body: dict[str, Any] = {"field_name": name, "field_type": field_type}
        if field_type in OPTION_TYPES:
            body["options"] = [{"label": label} for label in options or []]
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                created = FieldDefinition.model_validate(await self.client.create(f"{entity}Fields", body))
            except WriteInDoubt:
                del self._fields[entity]
                existing = await self.find(entity, name)
                if existing is not None:
                    return existing
                if attempt == WRITE_ATTEMPTS:
                    raise
                continue
            self._fields[entity].append(created)
            return created
        raise AssertionError("unreachable")

    async def _add_options(self, entity: str, field: FieldDefinition, labels: list[str]) -> None:
        """Add the labels the field lacks; an add left in doubt is settled by re-reading the field, as `_create`."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            known = field.option_ids()
            missing = [label for label in dict.fromkeys(labels) if label not in known]
            if not missing:
                return
            body = [{"label": label} for label in missing]
            try:
                added = await self.client.create(f"{entity}Fields/{field.field_code}/options", body)
            except WriteInDoubt:
                del self._fields[entity]
                field = await self.find(entity, field.field_name) or field
                if attempt == WRITE_ATTEMPTS:
                    raise
                continue
            present = {option.label for option in field.options or []}
            new = [FieldOption.model_validate(option) for option in added or [] if option["label"] not in present]
            field.options = [*(field.options or []), *new]
            return


def _check(entity: str) -> None:
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
