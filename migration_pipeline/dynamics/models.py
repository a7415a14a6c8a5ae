"""What the client parses from Entra ID and the Dataverse Web API.

Token and metadata answers are validated with pydantic at this boundary; data pages stay
plain dicts (a `Page`), since rows have as many shapes as there are tables and copying 5000
rows through a validator per page buys nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_pascal

DELETED_ENTITY_CONTEXT = "/$deletedEntity"


class TokenResponse(BaseModel):
    """The success answer of the Entra token endpoint (client-credentials grant)."""

    access_token: SecretStr
    expires_in: int  # seconds; the legacy v1 endpoint sends it as a string, which pydantic coerces
    token_type: str = "Bearer"


class AccessToken(BaseModel):
    """A bearer token and the monotonic time after which it should be renewed."""

    model_config = ConfigDict(frozen=True)

    value: SecretStr
    renew_at: float

    @classmethod
    def issued(cls, response: TokenResponse, now: float, renew_before: float) -> AccessToken:
        """Renew `renew_before` seconds ahead of expiry, but never later than half-way through its life.

        The half-life cap keeps a short-lived token (a sandbox may issue 60-second tokens)
        usable for a while instead of renewing it on every request.
        """
        lifetime = max(response.expires_in, 0)
        return cls(value=response.access_token, renew_at=now + lifetime - min(renew_before, lifetime / 2))

    def is_fresh(self, now: float) -> bool:
        return now < self.renew_at


class EntraError(BaseModel):
    """The error answer of the Entra token endpoint."""

    error: str
    error_description: str = ""
    error_codes: list[int] = Field(default_factory=list)


class DataverseErrorDetail(BaseModel):
    code: str = ""
    message: str = ""


class DataverseErrorBody(BaseModel):
    """`{"error": {"code": "0x8004...", "message": "..."}}`, the shape of every Web API error."""

    error: DataverseErrorDetail


@dataclass(frozen=True)
class Page:
    """One page of a collection: its rows, and where to go next.

    `next_link` is followed verbatim until absent; `delta_link` appears on the last page of a
    change-tracking read and is the watermark to store for the next delta pickup.
    """

    rows: list[dict[str, Any]]
    next_link: str | None = None
    delta_link: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Page:
        return cls(
            rows=body.get("value", []),
            next_link=body.get("@odata.nextLink"),
            delta_link=body.get("@odata.deltaLink"),
        )

    @property
    def deleted_ids(self) -> list[str]:
        """Ids of the rows a delta page reports as deleted."""
        return [row["id"] for row in self.rows if is_deleted(row)]

    @property
    def changed_rows(self) -> list[dict[str, Any]]:
        """The rows that are new or changed (everything but the deletions)."""
        return [row for row in self.rows if not is_deleted(row)]


def is_deleted(row: dict[str, Any]) -> bool:
    """Whether a delta row is a `$deletedEntity` (`{"@odata.context": ".../$deletedEntity", "id": ..., "reason": ...}`)."""
    return str(row.get("@odata.context", "")).endswith(DELETED_ENTITY_CONTEXT)


# --- Metadata -------------------------------------------------------------------------------


class _Metadata(BaseModel):
    """Metadata properties arrive in PascalCase; the models expose them in snake_case."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True)

    @classmethod
    def select(cls) -> str:
        """The `$select` that fetches exactly the properties this model reads."""
        return ",".join(field.alias or name for name, field in cls.model_fields.items())


class LocalizedLabel(_Metadata):
    label: str
    language_code: int | None = None


class Label(_Metadata):
    """A metadata label: the calling user's language first, else the first localized one."""

    user_localized_label: LocalizedLabel | None = None
    localized_labels: list[LocalizedLabel] = Field(default_factory=list)

    @property
    def text(self) -> str | None:
        if self.user_localized_label is not None:
            return self.user_localized_label.label
        return self.localized_labels[0].label if self.localized_labels else None


class ManagedValue(_Metadata):
    """Wrapper objects such as `RequiredLevel` and `AttributeTypeName`: `{"Value": ...}`."""

    value: str


class EntityDefinition(_Metadata):
    """One table, from `EntityDefinitions`."""

    logical_name: str
    schema_name: str | None = None
    entity_set_name: str | None = None  # intersect and some internal tables have none
    primary_id_attribute: str
    primary_name_attribute: str | None = None
    object_type_code: int | None = None
    is_custom_entity: bool = False
    is_intersect: bool = False
    is_activity: bool = False
    change_tracking_enabled: bool = False
    display_name: Label | None = None
    description: Label | None = None


class AttributeDefinition(_Metadata):
    """One column, from `EntityDefinitions(LogicalName='x')/Attributes`."""

    logical_name: str
    schema_name: str | None = None
    attribute_type: str | None = None
    attribute_type_name: ManagedValue | None = None
    is_custom_attribute: bool = False
    is_valid_for_read: bool = True
    is_primary_id: bool = False
    is_primary_name: bool = False
    attribute_of: str | None = None  # set on derived helper columns (e.g. `owneridname`): skip those
    required_level: ManagedValue | None = None
    display_name: Label | None = None
    description: Label | None = None


class OptionMetadata(_Metadata):
    """One choice value; `state` is the statecode a status reason belongs to."""

    value: int
    label: Label = Field(default_factory=Label)
    state: int | None = None

    @property
    def text(self) -> str | None:
        return self.label.text


class OptionSetMetadata(_Metadata):
    options: list[OptionMetadata] = Field(default_factory=list)


class ChoiceAttribute(_Metadata):
    """A choice column with its options expanded (`.../Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet`)."""

    logical_name: str
    option_set: OptionSetMetadata | None = None


class AttributeTypeDetails(_Metadata):
    """Type-specific column properties, which only a cast segment can select.

    `.../Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength,Format`
    and the like: the base `Attributes` collection refuses `MaxLength`, `Format` and `Targets`.
    """

    logical_name: str
    max_length: int | None = None
    format: str | None = None
    targets: list[str] = Field(default_factory=list)


class RelationshipDefinition(_Metadata):
    """One relationship from `RelationshipDefinitions`: a 1:N (a lookup column) or an N:N (an intersect table).

    The 1:N properties are empty on an N:N and the other way round; `relationship_type` says which.
    """

    schema_name: str
    relationship_type: str  # "OneToManyRelationship" or "ManyToManyRelationship"
    is_custom_relationship: bool = False
    referenced_entity: str | None = None
    referenced_attribute: str | None = None
    referencing_entity: str | None = None
    referencing_attribute: str | None = None
    entity1_logical_name: str | None = None
    entity2_logical_name: str | None = None
    intersect_entity_name: str | None = None
    entity1_intersect_attribute: str | None = None
    entity2_intersect_attribute: str | None = None
