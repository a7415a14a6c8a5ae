"""The data contract between the synthetic-data generator and the two simulators.

The generator (`synthetic.py`) fills these structures; the Dataverse simulator serves a
`DataverseDataset` and the Pipedrive simulator starts from a `PipedriveSeed`. Keeping the
contract in one small module lets each side be built and tested on its own.

Dataverse tables are columnar (one pandas DataFrame per entity set) so that a million-row
sandbox stays within memory and generates in seconds. Columns carry the Web API wire names:

- a plain attribute is its logical name (`name`, `revenue`, `statecode`, `createdon`);
- a lookup attribute `x` is the column `_x_value` holding a lower-case GUID string or None;
- a polymorphic lookup (Customer, Owner, Regarding, PartyList targets) also has the column
  `_x_value@Microsoft.Dynamics.CRM.lookuplogicalname` holding the target's logical name;
- datetimes are ISO 8601 UTC strings (`2024-05-01T10:00:00Z`), date-only values `YYYY-MM-DD`;
- money and decimals are floats, integers use the nullable `Int64` dtype, booleans `boolean`;
- every table has `versionnumber` (monotonic int, for change tracking), and every
  non-intersect table has `createdon` and `modifiedon`.

Formatted values (option labels, lookup primary names) are not stored: the simulator derives
them from the metadata and the referenced rows, as the real service does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

AttributeType = Literal[
    "Uniqueidentifier",
    "String",
    "Memo",
    "Integer",
    "BigInt",
    "Decimal",
    "Double",
    "Money",
    "Boolean",
    "DateTime",
    "Lookup",
    "Customer",
    "Owner",
    "PartyList",
    "Picklist",
    "State",
    "Status",
    "MultiSelectPicklist",
    "EntityName",
]

LOOKUP_TYPES: frozenset[str] = frozenset({"Lookup", "Customer", "Owner"})
OPTION_TYPES: frozenset[str] = frozenset({"Picklist", "State", "Status", "MultiSelectPicklist"})
LOOKUP_LOGICAL_NAME = "@Microsoft.Dynamics.CRM.lookuplogicalname"


@dataclass(frozen=True)
class OptionDef:
    """One option of a choice column. `state` is set on Status options (the statecode it belongs to)."""

    value: int
    label: str
    state: int | None = None


@dataclass(frozen=True)
class AttributeDef:
    """A column as `EntityDefinitions(...)/Attributes` describes it."""

    logical_name: str
    attribute_type: AttributeType
    display_name: str
    description: str = ""
    is_custom: bool = False
    max_length: int | None = None
    # String: Email, Url, Phone, Text, TextArea, TickerSymbol; DateTime: DateOnly, DateAndTime.
    format: str | None = None
    options: tuple[OptionDef, ...] = ()
    option_set_name: str | None = None
    is_global_option_set: bool = False
    targets: tuple[str, ...] = ()
    required_level: Literal["None", "SystemRequired", "ApplicationRequired", "Recommended"] = "None"
    min_value: float | None = None
    max_value: float | None = None
    precision: int | None = None
    is_valid_for_read: bool = True
    is_primary_id: bool = False
    is_primary_name: bool = False

    @property
    def column(self) -> str:
        """The wire name of this attribute's value in query results and in the DataFrame."""
        if self.attribute_type in LOOKUP_TYPES:
            return f"_{self.logical_name}_value"
        return self.logical_name

    @property
    def is_polymorphic(self) -> bool:
        return self.attribute_type in LOOKUP_TYPES and len(self.targets) > 1


@dataclass(frozen=True)
class EntityDef:
    """A table as `EntityDefinitions` describes it."""

    logical_name: str
    entity_set_name: str
    display_name: str
    display_collection_name: str
    primary_id_attribute: str
    primary_name_attribute: str | None
    attributes: tuple[AttributeDef, ...]
    object_type_code: int
    description: str = ""
    is_custom: bool = False
    is_intersect: bool = False
    is_activity: bool = False
    change_tracking_enabled: bool = True
    # The `readable` flag lets a dataset model a table the application user may not read
    # (e.g. `workflows` without the privilege): the simulator answers 403 PrivilegeDenied.
    readable: bool = True

    def attribute(self, logical_name: str) -> AttributeDef:
        for attribute in self.attributes:
            if attribute.logical_name == logical_name:
                return attribute
        raise KeyError(f"{self.logical_name} has no attribute {logical_name!r}")


@dataclass(frozen=True)
class RelationshipDef:
    """A relationship as `RelationshipDefinitions` describes it (1:N or N:N)."""

    schema_name: str
    relationship_type: Literal["OneToManyRelationship", "ManyToManyRelationship"]
    is_custom: bool = False
    # One-to-many
    referenced_entity: str | None = None
    referenced_attribute: str | None = None
    referencing_entity: str | None = None
    referencing_attribute: str | None = None
    referenced_entity_navigation_property_name: str | None = None
    referencing_entity_navigation_property_name: str | None = None
    # Many-to-many
    entity1_logical_name: str | None = None
    entity2_logical_name: str | None = None
    intersect_entity_name: str | None = None
    entity1_intersect_attribute: str | None = None
    entity2_intersect_attribute: str | None = None


@dataclass(frozen=True)
class Attachment:
    """An annotation's file body, produced on demand so that large files cost nothing until fetched.

    `body()` returns the raw bytes (the Web API serves them base64-encoded); `size` is the
    byte length the annotation's `filesize` column reports.
    """

    size: int
    body: Callable[[], bytes]


@dataclass
class OrganizationSettings:
    """The single `organizations` row the client reads settings from."""

    organization_id: str
    name: str
    base_currency_id: str
    max_upload_file_size: int = 131_072_000
    expire_change_tracking_in_days: int = 30


@dataclass
class DataverseDataset:
    """Everything the Dataverse simulator serves."""

    entities: dict[str, EntityDef]
    relationships: list[RelationshipDef]
    tables: dict[str, pd.DataFrame]
    attachments: dict[str, Attachment]
    organization: OrganizationSettings
    # Ground truth about planted cases, for tests and the audit's self-check: names such as
    # "circular_account_ids", "contacts_without_account", "malformed_email_contact_ids",
    # "unmatched_owner_ids", "disabled_user_ids", "team_owned_account_ids", ... -> ids or counts.
    planted: dict[str, Any] = field(default_factory=dict)

    def entity_by_set(self, entity_set_name: str) -> EntityDef:
        for entity in self.entities.values():
            if entity.entity_set_name == entity_set_name:
                return entity
        raise KeyError(f"no entity set named {entity_set_name!r}")

    def counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.tables.items()}


@dataclass
class PipedrivePlan:
    """The limits of the simulated company account (defaults: Premium, 10 seats)."""

    name: str = "premium"
    seats: int = 10
    daily_token_budget: int = 1_500_000
    burst_per_2s: int = 100
    search_burst_per_2s: int = 10
    custom_field_cap: int = 300
    deals_and_leads_cap: int = 150_000
    max_file_size: int = 50 * 1024 * 1024


@dataclass
class PipedriveSeed:
    """The Pipedrive company account the simulator starts from.

    Record dicts use the v2 response shapes (v1 for users, leads, notes, files, currencies,
    activity types). Pre-existing records carry no custom-field values.
    """

    company_domain: str
    users: list[dict[str, Any]]
    api_tokens: dict[str, int]  # token -> user id; the first is the admin token the tool uses
    currencies: list[dict[str, Any]]
    activity_types: list[dict[str, Any]]
    pipelines: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    organizations: list[dict[str, Any]] = field(default_factory=list)
    persons: list[dict[str, Any]] = field(default_factory=list)
    deals: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    plan: PipedrivePlan = field(default_factory=PipedrivePlan)
    planted: dict[str, Any] = field(default_factory=dict)
