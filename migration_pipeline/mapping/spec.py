"""The mapping workbook: YAML files in MIGRATION_MAPPINGS_DIR, read through pydantic models.

One file per Pipedrive object (`organizations.yaml`, ...). Each entry says where one Dynamics
column goes: a standard Pipedrive field (`target`) or a custom field (`custom_field`), which
transform carries the value across, whether the record is rejected without it, and a note for
the person who confirms the plan. A malformed file fails with the file, the line of the
entry and what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from migration_pipeline.errors import MappingError

# Pipedrive's creatable custom-field types (v2 `POST /{entity}Fields`).
FieldType = Literal[
    "varchar", "varchar_auto", "text", "double", "monetary", "phone", "date", "daterange", "time", "timerange",
    "enum", "set", "address", "org", "people", "user",
]

# How a value is carried across; each name is a pure function in `mapping/transforms.py`.
TransformName = Literal[
    "copy", "text", "url", "email", "integer", "money", "date", "datetime", "owner", "address", "option_label", "yes_no",
    "lookup_label",
]
# What a person decided (or the proposer suggested) for one column: carried to its destination, still
# to be decided (carried to the proposed default until then), or deliberately left in Dynamics.
EntryStatus = Literal["mapped", "needs_decision", "not_migrated"]

DYNAMICS_ID_FIELD = "Dynamics ID"


class CustomFieldTarget(BaseModel):
    """A Pipedrive custom field, identified by name (its 40-hex key is only known after provisioning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=255)
    field_type: FieldType
    options: list[str] | None = None

    @model_validator(mode="after")
    def _options_match_type(self) -> CustomFieldTarget:
        if self.field_type in ("enum", "set") and not self.options:
            raise ValueError(f"custom field {self.name!r} of type {self.field_type} needs options")
        if self.field_type not in ("enum", "set") and self.options:
            raise ValueError(f"custom field {self.name!r} of type {self.field_type} takes no options")
        return self


class FieldMap(BaseModel):
    """One Dynamics column -> one Pipedrive field, or none; several columns may fill one field that holds
    parts (an address) or several values (a person's emails or phones).

    Every column of the source table has an entry, so nothing is dropped silently: `not_migrated`
    entries say why a column stays behind; `needs_decision` ones are carried to the proposed
    default (if any) unless a person changes them before confirming.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | list[str]
    target: str | None = None
    custom_field: CustomFieldTarget | None = None
    transform: TransformName = "copy"
    status: EntryStatus = "mapped"
    confidence: float | None = Field(default=None, ge=0, le=1)
    required: bool = False
    max_length: int | None = Field(default=None, gt=0)
    min_value: float | None = None
    max_value: float | None = None
    # Choice labels the Pipedrive field has no option for: those values are not carried (each one
    # lands in staged.rejects), unless a person adds the options in Pipedrive and plans again.
    unmapped_options: list[str] = Field(default_factory=list)
    notes: str = ""

    @model_validator(mode="after")
    def _one_destination(self) -> FieldMap:
        both = self.target is not None and self.custom_field is not None
        neither = self.target is None and self.custom_field is None
        if self.status == "not_migrated" and not neither:
            raise ValueError("a `not_migrated` entry has neither `target` nor `custom_field`")
        if both or (neither and self.status == "mapped"):
            raise ValueError("give exactly one of `target` (a standard Pipedrive field) or `custom_field`")
        return self

    @property
    def carried(self) -> bool:
        """Whether the transform writes this entry anywhere."""
        return self.target is not None or self.custom_field is not None

    @property
    def sources(self) -> list[str]:
        return self.source if isinstance(self.source, list) else [self.source]

    @property
    def destination(self) -> str:
        """The staged column this field fills: the standard field name, or `custom:<name>`."""
        return self.target if self.target is not None else f"custom:{self.custom_field.name}"  # type: ignore[union-attr]


class ObjectMap(BaseModel):
    """How one Dynamics entity set becomes one Pipedrive object."""

    model_config = ConfigDict(extra="forbid")

    object: str
    source_entity_set: str
    source_key: str
    fields: list[FieldMap]

    @property
    def carried_fields(self) -> list[FieldMap]:
        """The entries the transform writes (not the columns left behind)."""
        return [field_map for field_map in self.fields if field_map.carried]

    @property
    def covered_sources(self) -> set[str]:
        """Every source column some entry speaks for, carried or not."""
        return {column for field_map in self.fields for column in field_map.sources} | {self.source_key}

    @model_validator(mode="after")
    def _unique_destinations(self) -> ObjectMap:
        seen: set[str] = set()
        for field_map in self.carried_fields:
            if field_map.destination in seen:
                raise ValueError(f"two entries write {field_map.destination!r}")
            seen.add(field_map.destination)
        return self

    @property
    def custom_fields(self) -> list[CustomFieldTarget]:
        """Every custom field this object needs, the Dynamics ID first."""
        dynamics_id = CustomFieldTarget(name=DYNAMICS_ID_FIELD, field_type="varchar")
        return [dynamics_id] + [f.custom_field for f in self.carried_fields if f.custom_field is not None]

    @property
    def source_columns(self) -> list[str]:
        columns = [self.source_key]
        for field_map in self.carried_fields:
            columns.extend(column for column in field_map.sources if column not in columns)
        return columns


Model = TypeVar("Model", bound=BaseModel)


def load_model(path: Path, model: type[Model]) -> Model:
    """Read and validate one workbook file; errors name the file, the entry's line and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(f"Mapping file {path} does not exist.", hint="Run `migrate plan` to write the proposed maps.") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise MappingError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).", hint="Fix the file's syntax at that line (indentation, a closing bracket or quote) and run the command again.") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error, node) for error in exc.errors()]
        raise MappingError(f"{path}: " + "; ".join(problems) + ".", hint="Fix the named entries and run the command again.") from None


def write_model(model: BaseModel, path: Path, header: str, exclude_defaults: bool = False) -> None:
    """Write one workbook file: a comment header for the person who reviews it, then the model, in a stable order."""
    data = model.model_dump(mode="json", exclude_defaults=exclude_defaults)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
    path.write_text(header + body, encoding="utf-8")


def load_object_map(path: Path) -> ObjectMap:
    return load_model(path, ObjectMap)


def _describe(error: Any, root: yaml.Node | None) -> str:
    """'line 12, fields[3].custom_field.field_type: Input should be ...' for one pydantic error."""
    location = list(error["loc"])
    node, line = root, None
    for part in location:
        node = _child(node, part)
        if node is None:
            break
        line = node.start_mark.line + 1
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    entry = ""
    if len(location) >= 2 and location[0] == "fields" and isinstance(location[1], int) and root is not None:
        source = _child(_child(_child(root, "fields"), location[1]), "source")
        if isinstance(source, yaml.ScalarNode):
            entry = f" (entry for {source.value!r})"
        elif isinstance(source, yaml.SequenceNode):
            entry = f" (entry for {'/'.join(str(item.value) for item in source.value)!r})"
    prefix = f"line {line}, " if line else ""
    return f"{prefix}{path or 'file'}{entry}: {error['msg']}"


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None
