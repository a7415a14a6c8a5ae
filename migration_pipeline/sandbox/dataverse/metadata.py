"""EntityDefinitions, Attributes and RelationshipDefinitions, in the Web API's metadata shapes.

The records use the service's property names and nesting (labels as `{LocalizedLabels,
UserLocalizedLabel}`, managed properties as `{Value, CanBeChanged, ...}`, derived types named
by `@odata.type`). Queries follow the service's rules: the base collection only lets you
`$select` base properties, type-specific ones (MaxLength, Targets, OptionSet, ...) need the
cast segment, option sets only appear through `$expand`, and nothing is paged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from migration_pipeline.sandbox.dataset import AttributeDef, EntityDef, OptionDef, RelationshipDef
from migration_pipeline.sandbox.dataverse.errors import no_resource, query_error
from migration_pipeline.sandbox.dataverse.evaluate import ColumnKind, Columns, comparable, filter_mask
from migration_pipeline.sandbox.dataverse.odata import ExpandItem, parse_expand, parse_filter, parse_select

NAMESPACE = "Microsoft.Dynamics.CRM"
LANGUAGE = 1033

_TYPE_NAMES = {
    "Uniqueidentifier": "UniqueidentifierType",
    "String": "StringType",
    "Memo": "MemoType",
    "Integer": "IntegerType",
    "BigInt": "BigIntType",
    "Decimal": "DecimalType",
    "Double": "DoubleType",
    "Money": "MoneyType",
    "Boolean": "BooleanType",
    "DateTime": "DateTimeType",
    "Lookup": "LookupType",
    "Customer": "CustomerType",
    "Owner": "OwnerType",
    "PartyList": "PartyListType",
    "Picklist": "PicklistType",
    "State": "StateType",
    "Status": "StatusType",
    "MultiSelectPicklist": "MultiSelectPicklistType",
    "EntityName": "EntityNameType",
}
_CASTS = {
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "PartyList": "LookupAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "MultiSelectPicklist": "MultiSelectPicklistAttributeMetadata",
    "EntityName": "EntityNameAttributeMetadata",
}
_RANGES: dict[str, tuple[float, float]] = {
    "Integer": (-2147483648, 2147483647),
    "BigInt": (-9223372036854775808, 9223372036854775807),
    "Decimal": (-100000000000, 100000000000),
    "Double": (-100000000000, 100000000000),
    "Money": (-922337203685477, 922337203685477),
}
_WITH_OPTION_SETS = frozenset(
    {"PicklistAttributeMetadata", "MultiSelectPicklistAttributeMetadata", "StateAttributeMetadata", "StatusAttributeMetadata", "BooleanAttributeMetadata"}
)
# Enum-typed properties: `$filter` needs the qualified literal, e.g. Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'.
_ENUM_PROPERTIES = frozenset({"AttributeType", "RequiredLevel/Value", "OwnershipType", "RelationshipType", "SecurityTypes", "TableType"})


def metadata_id(*parts: str) -> str:
    """A stable MetadataId per item, so ids survive restarts of the sandbox."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "dataverse-sandbox:" + "/".join(parts)))


def label(text: str, *owner: str) -> dict[str, Any]:
    if not text:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    localized = {"Label": text, "LanguageCode": LANGUAGE, "IsManaged": True, "MetadataId": metadata_id("label", *owner), "HasChanged": None}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def managed(value: Any, property_name: str) -> dict[str, Any]:
    return {"Value": value, "CanBeChanged": True, "ManagedPropertyLogicalName": property_name}


def schema_name(logical_name: str) -> str:
    prefix, separator, rest = logical_name.partition("_")
    if separator and prefix and rest and not logical_name.startswith("_"):
        return f"{prefix}_{rest[:1].upper()}{rest[1:]}"
    return logical_name[:1].upper() + logical_name[1:]


# --- records ------------------------------------------------------------------------------------


def entity_record(entity: EntityDef) -> dict[str, Any]:
    owned = any(attribute.attribute_type == "Owner" for attribute in entity.attributes)
    return {
        "MetadataId": metadata_id("entity", entity.logical_name),
        "LogicalName": entity.logical_name,
        "SchemaName": schema_name(entity.logical_name),
        "EntitySetName": entity.entity_set_name,
        "LogicalCollectionName": entity.entity_set_name,
        "CollectionSchemaName": schema_name(entity.entity_set_name),
        "PrimaryIdAttribute": entity.primary_id_attribute,
        "PrimaryNameAttribute": entity.primary_name_attribute,
        "ObjectTypeCode": entity.object_type_code,
        "IsCustomEntity": entity.is_custom,
        "IsActivity": entity.is_activity,
        "IsIntersect": entity.is_intersect,
        "IsManaged": not entity.is_custom,
        "ChangeTrackingEnabled": entity.change_tracking_enabled,
        "CanChangeTrackingBeEnabled": managed(True, "canchangetrackingbeenabled"),
        "DisplayName": label(entity.display_name, entity.logical_name, "DisplayName"),
        "DisplayCollectionName": label(entity.display_collection_name, entity.logical_name, "DisplayCollectionName"),
        "Description": label(entity.description, entity.logical_name, "Description"),
        "OwnershipType": "UserOwned" if owned else "OrganizationOwned",
        "TableType": "Standard",
        "IsValidForAdvancedFind": not entity.is_intersect,
        "HasNotes": False,
        "HasActivities": False,
        "IsAuditEnabled": managed(False, "canmodifyauditsettings"),
        "IntroducedVersion": "1.0" if entity.is_custom else "5.0.0.0",
    }


def attribute_record(entity: EntityDef, attribute: AttributeDef, column_number: int) -> dict[str, Any]:
    """The full record (base plus type-specific properties); option sets come from `option_set`."""
    owner = (entity.logical_name, attribute.logical_name)
    cast = _CASTS[attribute.attribute_type]
    record: dict[str, Any] = {
        "@odata.type": f"#{NAMESPACE}.{cast}",
        "MetadataId": metadata_id("attribute", *owner),
        "LogicalName": attribute.logical_name,
        "SchemaName": schema_name(attribute.logical_name),
        "EntityLogicalName": entity.logical_name,
        "AttributeType": attribute.attribute_type,
        "AttributeTypeName": {"Value": _TYPE_NAMES[attribute.attribute_type]},
        "DisplayName": label(attribute.display_name, *owner, "DisplayName"),
        "Description": label(attribute.description, *owner, "Description"),
        "IsCustomAttribute": attribute.is_custom,
        "IsValidForRead": attribute.is_valid_for_read,
        "IsValidForCreate": True,
        "IsValidForUpdate": not attribute.is_primary_id,
        "IsPrimaryId": attribute.is_primary_id,
        "IsPrimaryName": attribute.is_primary_name,
        "IsLogical": False,
        "IsManaged": not attribute.is_custom,
        "IsSecured": False,
        "RequiredLevel": managed(attribute.required_level, "canmodifyrequirementlevelsettings"),
        "AttributeOf": None,
        "ColumnNumber": column_number,
        "IsValidForAdvancedFind": managed(True, "canmodifysearchsettings"),
        "IsAuditEnabled": managed(False, "canmodifyauditsettings"),
        "IntroducedVersion": "1.0" if attribute.is_custom else "5.0.0.0",
        "SourceType": 0,
    }
    record.update(_typed_properties(attribute))
    return record


def _typed_properties(attribute: AttributeDef) -> dict[str, Any]:
    kind = attribute.attribute_type
    if kind == "String":
        text_format = attribute.format or "Text"
        return {
            "MaxLength": attribute.max_length or 100,
            "DatabaseLength": 2 * (attribute.max_length or 100),
            "Format": text_format,
            "FormatName": {"Value": text_format},
            "ImeMode": "Auto",
            "YomiOf": None,
            "IsLocalizable": False,
        }
    if kind == "Memo":
        return {"MaxLength": attribute.max_length or 2000, "DatabaseLength": 2 * (attribute.max_length or 2000), "Format": attribute.format or "TextArea", "ImeMode": "Auto"}
    if kind in _RANGES:
        low, high = _RANGES[kind]
        typed: dict[str, Any] = {
            "MinValue": attribute.min_value if attribute.min_value is not None else low,
            "MaxValue": attribute.max_value if attribute.max_value is not None else high,
        }
        if kind == "Integer":
            typed["Format"] = attribute.format or "None"
        if kind in {"Decimal", "Double", "Money"}:
            typed["Precision"] = attribute.precision if attribute.precision is not None else 2
            typed["ImeMode"] = "Auto"
        if kind == "Money":
            typed.update({"PrecisionSource": 2, "IsBaseCurrency": attribute.logical_name.endswith("_base"), "CalculationOf": None})
        return typed
    if kind == "DateTime":
        behavior = "DateOnly" if attribute.format == "DateOnly" else "UserLocal"
        return {"Format": attribute.format or "DateAndTime", "DateTimeBehavior": {"Value": behavior}, "ImeMode": "Auto"}
    if kind in {"Lookup", "Customer", "Owner", "PartyList"}:
        return {"Targets": list(attribute.targets), "Format": "None"}
    if kind in {"Picklist", "State", "Status", "MultiSelectPicklist"}:
        return {"DefaultFormValue": attribute.options[0].value if kind == "Picklist" and attribute.options else -1}
    if kind == "Boolean":
        return {"DefaultValue": False}
    return {}


def option_set(entity: EntityDef, attribute: AttributeDef) -> dict[str, Any]:
    """What `$expand=OptionSet` adds to a choice (or Boolean) attribute."""
    name = attribute.option_set_name or f"{entity.logical_name}_{attribute.logical_name}"
    kind = attribute.attribute_type
    option_set_type = {"Picklist": "Picklist", "MultiSelectPicklist": "Picklist", "State": "State", "Status": "Status", "Boolean": "Boolean"}[kind]
    record: dict[str, Any] = {
        "MetadataId": metadata_id("optionset", name),
        "HasChanged": None,
        "Name": name,
        "IsGlobal": attribute.is_global_option_set,
        "IsCustomOptionSet": attribute.is_custom,
        "IsManaged": not attribute.is_custom,
        "OptionSetType": option_set_type,
        "IntroducedVersion": "5.0.0.0",
        "ParentOptionSetName": None,
        "ExternalTypeName": None,
        "DisplayName": label(attribute.display_name, "optionset", name),
        "Description": label("", "optionset", name),
    }
    if kind == "Boolean":
        labels = {option.value: option.label for option in attribute.options}
        record["TrueOption"] = _option(OptionDef(1, labels.get(1, "Yes")), name)
        record["FalseOption"] = _option(OptionDef(0, labels.get(0, "No")), name)
        return record
    statuses = _status_options(entity)
    record["Options"] = [_option(option, name, kind, statuses) for option in attribute.options]
    return record


def _status_options(entity: EntityDef) -> tuple[OptionDef, ...]:
    return next((a.options for a in entity.attributes if a.attribute_type == "Status"), ())


def _option(option: OptionDef, set_name: str, kind: str = "Picklist", statuses: tuple[OptionDef, ...] = ()) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Value": option.value,
        "Color": None,
        "IsManaged": True,
        "ExternalValue": "",
        "ParentValues": [],
        "Tag": None,
        "IsHidden": False,
        "MetadataId": None,
        "HasChanged": None,
        "Label": label(option.label, "option", set_name, str(option.value)),
        "Description": label("", "option", set_name, str(option.value)),
    }
    if kind == "Status":
        record = {"@odata.type": f"#{NAMESPACE}.StatusOptionMetadata", **record, "State": option.state, "TransitionData": None}
    elif kind == "State":
        default = next((status.value for status in statuses if status.state == option.value), None)
        invariant = "".join(option.label.split())
        record = {"@odata.type": f"#{NAMESPACE}.StateOptionMetadata", **record, "InvariantName": invariant, "DefaultStatus": default}
    return record


def relationship_record(relationship: RelationshipDef) -> dict[str, Any]:
    common = {
        "MetadataId": metadata_id("relationship", relationship.schema_name),
        "SchemaName": relationship.schema_name,
        "RelationshipType": relationship.relationship_type,
        "IsCustomRelationship": relationship.is_custom,
        "IsCustomizable": managed(True, "iscustomizable"),
        "IsManaged": not relationship.is_custom,
        "IsValidForAdvancedFind": True,
        "SecurityTypes": "Append",
        "IntroducedVersion": "1.0" if relationship.is_custom else "5.0.0.0",
    }
    if relationship.relationship_type == "OneToManyRelationship":
        return {
            "@odata.type": f"#{NAMESPACE}.OneToManyRelationshipMetadata",
            **common,
            "ReferencedAttribute": relationship.referenced_attribute,
            "ReferencedEntity": relationship.referenced_entity,
            "ReferencingAttribute": relationship.referencing_attribute,
            "ReferencingEntity": relationship.referencing_entity,
            "ReferencedEntityNavigationPropertyName": relationship.referenced_entity_navigation_property_name,
            "ReferencingEntityNavigationPropertyName": relationship.referencing_entity_navigation_property_name,
            "IsHierarchical": relationship.referenced_entity == relationship.referencing_entity,
            "RelationshipBehavior": 0,
            "CascadeConfiguration": {
                "Assign": "NoCascade", "Delete": "RemoveLink", "Merge": "NoCascade", "Reparent": "NoCascade",
                "Share": "NoCascade", "Unshare": "NoCascade", "RollupView": "NoCascade", "Archive": "NoCascade",
            },
        }
    return {
        "@odata.type": f"#{NAMESPACE}.ManyToManyRelationshipMetadata",
        **common,
        "Entity1LogicalName": relationship.entity1_logical_name,
        "Entity2LogicalName": relationship.entity2_logical_name,
        "IntersectEntityName": relationship.intersect_entity_name,
        "Entity1IntersectAttribute": relationship.entity1_intersect_attribute,
        "Entity2IntersectAttribute": relationship.entity2_intersect_attribute,
        "Entity1NavigationPropertyName": f"{relationship.schema_name}_{relationship.entity1_logical_name}",
        "Entity2NavigationPropertyName": f"{relationship.schema_name}_{relationship.entity2_logical_name}",
    }


ENTITY_PROPERTIES = frozenset(entity_record(EntityDef("x", "xs", "X", "Xs", "xid", None, (), 1)))
ENTITY_NAVIGATION = frozenset({"Attributes", "OneToManyRelationships", "ManyToOneRelationships", "ManyToManyRelationships"})
ATTRIBUTE_BASE_PROPERTIES = frozenset(attribute_record(EntityDef("x", "xs", "X", "Xs", "xid", None, (), 1), AttributeDef("x", "Uniqueidentifier", "X"), 1)) - {"@odata.type"}
RELATIONSHIP_BASE_PROPERTIES = frozenset(relationship_record(RelationshipDef("x", "ManyToManyRelationship"))) - {
    "@odata.type", "Entity1LogicalName", "Entity2LogicalName", "IntersectEntityName", "Entity1IntersectAttribute",
    "Entity2IntersectAttribute", "Entity1NavigationPropertyName", "Entity2NavigationPropertyName",
}


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataItem:
    """One record plus what its type allows: selectable properties and expandable navigation."""

    record: dict[str, Any]
    expand: Mapping[str, Callable[[], Any]]


def query_collection(items: list[MetadataItem], options: Mapping[str, str], properties: frozenset[str], type_name: str) -> list[dict[str, Any]]:
    """Apply `$filter`, `$select` and `$expand` to a metadata collection (never paged)."""
    unsupported = set(options) - {"$select", "$filter", "$expand"}
    if unsupported:
        raise query_error(f"The query parameter {sorted(unsupported)[0]} is not supported for metadata queries.")
    if "$filter" in options:
        items = [item for item, keep in zip(items, _metadata_mask(items, options["$filter"], type_name), strict=True) if keep]
    return [shape_item(item, options, properties, type_name) for item in items]


def shape_item(item: MetadataItem, options: Mapping[str, str], properties: frozenset[str], type_name: str) -> dict[str, Any]:
    """`$select` and `$expand` on one metadata record."""
    record = item.record
    if "$select" in options:
        selected = parse_select(options["$select"])
        for name in selected:
            if name not in properties:
                raise query_error(f"Could not find a property named '{name}' on type '{NAMESPACE}.{type_name}'.")
        keep = {"@odata.type", "MetadataId", *selected}
        record = {key: value for key, value in record.items() if key in keep}
    else:
        record = dict(record)
    for expansion in parse_expand(options.get("$expand", "")):
        record[expansion.name] = _expanded(item, expansion, type_name)
    return record


def _expanded(item: MetadataItem, expansion: ExpandItem, type_name: str) -> Any:
    factory = item.expand.get(expansion.name)
    if factory is None:
        raise query_error(f"Could not find a navigation property named '{expansion.name}' on type '{NAMESPACE}.{type_name}'.")
    value = factory()
    if isinstance(value, tuple):  # a nested collection: (items, properties, type name)
        nested, properties, nested_type = value
        return query_collection(nested, expansion.options, properties, nested_type)
    if expansion.options.get("$select") and value is not None:
        keep = {"MetadataId", *parse_select(expansion.options["$select"])}
        return {key: field for key, field in value.items() if key in keep}
    return value


def _metadata_mask(items: list[MetadataItem], text: str, type_name: str) -> list[bool]:
    expr = parse_filter(text)
    flat = [_flatten(item.record) for item in items]
    frame = pd.DataFrame(flat)
    kinds: dict[str, ColumnKind] = {column: _metadata_kind(column, frame[column]) for column in frame.columns}
    columns = Columns(kinds, lambda name: comparable(frame[name], kinds[name]), len(frame), f"{NAMESPACE}.{type_name}")
    return filter_mask(expr, columns).tolist() if len(frame) else []


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key.startswith("@"):
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif not isinstance(value, list):
            flat[prefix + key] = value
    return flat


def _metadata_kind(name: str, values: pd.Series) -> ColumnKind:
    if name in _ENUM_PROPERTIES:
        return "enum"
    if name.endswith("MetadataId"):
        return "guid"
    present = values.dropna()
    sample = present.iloc[0] if len(present) else None
    if isinstance(sample, bool | np.bool_):
        return "bool"
    if isinstance(sample, int | np.integer):
        return "int"
    if isinstance(sample, float | np.floating):
        return "decimal"
    return "string"


def attribute_cast(attribute: AttributeDef) -> str:
    return _CASTS[attribute.attribute_type]


def cast_properties(cast: str) -> frozenset[str]:
    """Selectable properties of a derived attribute type (base plus its own)."""
    samples = [attribute for kind, name in _CASTS.items() if name == cast for attribute in [AttributeDef("x", kind, "X")]]  # type: ignore[arg-type]
    if not samples:
        raise no_resource(f"{NAMESPACE}.{cast}")
    return ATTRIBUTE_BASE_PROPERTIES | frozenset(_typed_properties(samples[0]))


def has_option_sets(cast: str) -> bool:
    return cast in _WITH_OPTION_SETS

