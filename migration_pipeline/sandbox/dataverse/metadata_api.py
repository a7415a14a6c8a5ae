"""Resolve metadata paths (`EntityDefinitions(...)/Attributes/<cast>`, `RelationshipDefinitions`, ...).

Records are built once from the dataset (metadata does not change while the sandbox runs);
each request only filters and shapes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migration_pipeline.sandbox.dataset import EntityDef, RelationshipDef
from migration_pipeline.sandbox.dataverse.errors import DataverseError, no_resource, not_found, query_error
from migration_pipeline.sandbox.dataverse.metadata import (
    ATTRIBUTE_BASE_PROPERTIES,
    ENTITY_PROPERTIES,
    NAMESPACE,
    RELATIONSHIP_BASE_PROPERTIES,
    MetadataItem,
    attribute_cast,
    attribute_record,
    cast_properties,
    entity_record,
    has_option_sets,
    option_set,
    query_collection,
    relationship_record,
    shape_item,
)
from migration_pipeline.sandbox.dataverse.odata import Segment, guid_key, named_key

METADATA_ROOTS = frozenset({"EntityDefinitions", "RelationshipDefinitions"})
_RELATIONSHIP_CASTS = {
    "OneToManyRelationshipMetadata": "OneToManyRelationship",
    "ManyToManyRelationshipMetadata": "ManyToManyRelationship",
}
_ENTITY_RELATIONSHIPS = {
    "OneToManyRelationships": "OneToManyRelationshipMetadata",
    "ManyToOneRelationships": "OneToManyRelationshipMetadata",
    "ManyToManyRelationships": "ManyToManyRelationshipMetadata",
}


class MetadataApi:
    def __init__(self, entities: Mapping[str, EntityDef], relationships: list[RelationshipDef]) -> None:
        self.entities = dict(entities)
        self.relationships = list(relationships)
        self._entity_records = {name: entity_record(entity) for name, entity in self.entities.items()}
        self._relationship_records = [relationship_record(relationship) for relationship in self.relationships]
        self._relationship_properties = {
            cast: frozenset(record) - {"@odata.type"}
            for cast in _RELATIONSHIP_CASTS
            for record in [next((r for r in self._relationship_records if r["@odata.type"].endswith(cast)), None)]
            if record is not None
        }

    def handle(self, segments: list[Segment], options: Mapping[str, str], service_root: str) -> dict[str, Any]:
        head, rest = segments[0], segments[1:]
        context = f"{service_root}$metadata#{'/'.join(_describe(segment) for segment in segments)}"
        if head.name == "EntityDefinitions":
            if head.key is None:
                if rest:
                    raise query_error("Select an entity with EntityDefinitions(LogicalName='...') before navigating.")
                items = [self._entity_item(name) for name in self.entities]
                return {"@odata.context": context, "value": query_collection(items, options, ENTITY_PROPERTIES, "EntityMetadata")}
            entity = self._entity(head.key)
            if not rest:
                return {"@odata.context": context + "/$entity", **shape_item(self._entity_item(entity.logical_name), options, ENTITY_PROPERTIES, "EntityMetadata")}
            return self._entity_navigation(entity, rest, options, context)
        return self._relationship_definitions(head, rest, options, context)

    # --- entities and attributes ---

    def _entity(self, key: str) -> EntityDef:
        logical_name = named_key(key, "LogicalName")
        if logical_name is None:
            metadata_id = guid_key(key)
            logical_name = next((n for n, r in self._entity_records.items() if r["MetadataId"] == metadata_id), None)
        entity = self.entities.get(logical_name or "")
        if entity is None:
            raise not_found(f"Could not find entity with key {key}.")
        return entity

    def _entity_item(self, logical_name: str) -> MetadataItem:
        entity = self.entities[logical_name]
        expand = {
            "Attributes": lambda: (self._attribute_items(entity, None), ATTRIBUTE_BASE_PROPERTIES, "AttributeMetadata"),
            **{
                navigation: (lambda navigation=navigation: (self._relationship_items(entity, navigation), self._relationship_properties_for(cast), cast))
                for navigation, cast in _ENTITY_RELATIONSHIPS.items()
            },
        }
        return MetadataItem(self._entity_records[logical_name], expand)

    def _attribute_items(self, entity: EntityDef, cast: str | None) -> list[MetadataItem]:
        items = []
        for number, attribute in enumerate(entity.attributes, start=1):
            if cast is not None and attribute_cast(attribute) != cast:
                continue
            record = attribute_record(entity, attribute, number)
            expand = {}
            if cast is not None and has_option_sets(cast):
                expand = {
                    "OptionSet": lambda attribute=attribute: option_set(entity, attribute),
                    "GlobalOptionSet": lambda attribute=attribute: option_set(entity, attribute) if attribute.is_global_option_set else None,
                }
            items.append(MetadataItem(record, expand))
        return items

    def _entity_navigation(self, entity: EntityDef, rest: list[Segment], options: Mapping[str, str], context: str) -> dict[str, Any]:
        navigation = rest[0]
        if navigation.name in _ENTITY_RELATIONSHIPS and navigation.key is None and len(rest) == 1:
            cast = _ENTITY_RELATIONSHIPS[navigation.name]
            value = query_collection(self._relationship_items(entity, navigation.name), options, self._relationship_properties_for(cast), cast)
            return {"@odata.context": context, "value": value}
        if navigation.name != "Attributes" or len(rest) > 2:
            raise _no_segment(rest[-1] if navigation.name == "Attributes" else navigation)
        cast = _cast_name(rest[1]) if len(rest) == 2 else None
        properties = cast_properties(cast) if cast else ATTRIBUTE_BASE_PROPERTIES
        type_name = cast or "AttributeMetadata"
        if navigation.key is None:
            items = self._attribute_items(entity, cast)
            return {"@odata.context": context, "value": query_collection(items, options, properties, type_name)}
        attribute_name = named_key(navigation.key, "LogicalName")
        metadata_id = guid_key(navigation.key)

        def addressed(items: list[MetadataItem]) -> MetadataItem | None:
            return next((i for i in items if i.record["LogicalName"] == attribute_name or i.record["MetadataId"] == metadata_id), None)

        item = addressed(self._attribute_items(entity, cast))
        if item is None:
            other = addressed(self._attribute_items(entity, None))
            if other is None:
                raise not_found(f"Could not find attribute with key {navigation.key} on entity {entity.logical_name}.")
            raise query_error(f"The attribute '{other.record['LogicalName']}' is not of type '{NAMESPACE}.{cast}'.")
        return {"@odata.context": context + "/$entity", **shape_item(item, options, properties, type_name)}

    # --- relationships ---

    def _relationship_properties_for(self, cast: str) -> frozenset[str]:
        return self._relationship_properties.get(cast, RELATIONSHIP_BASE_PROPERTIES)

    def _relationship_items(self, entity: EntityDef, navigation: str) -> list[MetadataItem]:
        name = entity.logical_name
        selected = []
        for relationship, record in zip(self.relationships, self._relationship_records, strict=True):
            if navigation == "OneToManyRelationships":
                keep = relationship.relationship_type == "OneToManyRelationship" and relationship.referenced_entity == name
            elif navigation == "ManyToOneRelationships":
                keep = relationship.relationship_type == "OneToManyRelationship" and relationship.referencing_entity == name
            else:
                keep = relationship.relationship_type == "ManyToManyRelationship" and name in {relationship.entity1_logical_name, relationship.entity2_logical_name}
            if keep:
                selected.append(MetadataItem(record, {}))
        return selected

    def _relationship_definitions(self, head: Segment, rest: list[Segment], options: Mapping[str, str], context: str) -> dict[str, Any]:
        if len(rest) > 1:
            raise _no_segment(rest[1])
        cast = _cast_name(rest[0]) if rest else None
        if cast is not None and cast not in _RELATIONSHIP_CASTS:
            raise _no_segment(rest[0])
        relationship_type = _RELATIONSHIP_CASTS.get(cast or "")
        items = [
            MetadataItem(record, {})
            for relationship, record in zip(self.relationships, self._relationship_records, strict=True)
            if relationship_type is None or relationship.relationship_type == relationship_type
        ]
        properties = self._relationship_properties_for(cast) if cast else RELATIONSHIP_BASE_PROPERTIES
        type_name = cast or "RelationshipMetadataBase"
        if head.key is None:
            return {"@odata.context": context, "value": query_collection(items, options, properties, type_name)}
        schema = named_key(head.key, "SchemaName")
        metadata_id = guid_key(head.key)
        match = next((item for item in items if item.record["SchemaName"] == schema or item.record["MetadataId"] == metadata_id), None)
        if match is None:
            raise not_found(f"Could not find relationship with key {head.key}.")
        return {"@odata.context": context + "/$entity", **shape_item(match, options, properties, type_name)}


def _cast_name(segment: Segment) -> str:
    prefix = f"{NAMESPACE}."
    if not segment.name.startswith(prefix) or segment.key is not None:
        raise _no_segment(segment)
    return segment.name[len(prefix) :]


def _no_segment(segment: Segment) -> DataverseError:
    return no_resource(segment.name)


def _describe(segment: Segment) -> str:
    return segment.name if segment.key is None else f"{segment.name}({segment.key})"
