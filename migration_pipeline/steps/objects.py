"""The objects the migration moves, and how each is addressed on both sides.

One table serves every step (transform, provision, load, verify, rollback), so adding an
object is one entry here plus its mapping file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MigratedObject:
    name: str  # the Pipedrive object, plural: staged/<name>, idmap.<name>, pipedrive/<name>
    resource: str  # the Pipedrive API resource
    field_entity: str  # the custom-field entity (`organizationFields` -> "organization")
    logical_name: str  # the Dynamics table
    entity_set: str  # the Dynamics entity set
    map_file: str  # the mapping workbook file


ORGANIZATIONS = MigratedObject(
    name="organizations",
    resource="organizations",
    field_entity="organization",
    logical_name="account",
    entity_set="accounts",
    map_file="organizations.yaml",
)

def _planned(name: str, resource: str, field_entity: str, logical_name: str, entity_set: str) -> MigratedObject:
    return MigratedObject(name, resource, field_entity, logical_name, entity_set, f"{name}.yaml")


PERSONS = _planned("persons", "persons", "person", "contact", "contacts")
PRODUCTS = _planned("products", "products", "product", "product", "products")
DEALS = _planned("deals", "deals", "deal", "opportunity", "opportunities")

LEADS = _planned("leads", "leads", "deal", "lead", "leads")  # leads carry the deal custom fields

# In load order (DESIGN.md): the objects with a "Dynamics ID", each a v2 resource.
OBJECTS: tuple[MigratedObject, ...] = (ORGANIZATIONS, PERSONS, PRODUCTS, DEALS)
# The objects whose custom fields provisioning creates: those, and leads (on the deal fields).
FIELD_OBJECTS: tuple[MigratedObject, ...] = (*OBJECTS, LEADS)


# Every object of DESIGN.md's table, each with a workbook file the plan proposes column by column.
# Activities are proposed from `activitypointers`, the columns the four activity types share.
WORKBOOK_OBJECTS: tuple[MigratedObject, ...] = (
    ORGANIZATIONS,
    PERSONS,
    DEALS,
    LEADS,
    PRODUCTS,
    _planned("deal_products", "deals/{id}/products", "deal_product", "opportunityproduct", "opportunityproducts"),
    _planned("activities", "activities", "activity", "activitypointer", "activitypointers"),
    _planned("notes", "notes", "note", "annotation", "annotations"),
)

# Dynamics tables the plan needs besides the migrated ones: owners are system users and teams.
REFERENCE_TABLES: tuple[tuple[str, str], ...] = (("systemuser", "systemusers"), ("team", "teams"))

# Every standard Dynamics table the migration reads, as (logical name, entity set): the objects of
# DESIGN.md's table, what they refer to, and what the audit inventories. Custom entities and
# their N:N intersects come on top, from schema discovery.
STANDARD_TABLES: tuple[tuple[str, str], ...] = (
    ("account", "accounts"),
    ("contact", "contacts"),
    ("opportunity", "opportunities"),
    ("lead", "leads"),
    ("activitypointer", "activitypointers"),
    ("phonecall", "phonecalls"),
    ("email", "emails"),
    ("task", "tasks"),
    ("appointment", "appointments"),
    ("activityparty", "activityparties"),
    ("product", "products"),
    ("productassociation", "productassociations"),
    ("pricelevel", "pricelevels"),
    ("productpricelevel", "productpricelevels"),
    ("opportunityproduct", "opportunityproducts"),
    ("annotation", "annotations"),
    ("systemuser", "systemusers"),
    ("team", "teams"),
    ("transactioncurrency", "transactioncurrencies"),
    ("organization", "organizations"),  # the Dynamics organization's settings: its base currency
    ("processstage", "processstages"),
    ("workflow", "workflows"),
    ("sdkmessageprocessingstep", "sdkmessageprocessingsteps"),
)


def by_name(name: str) -> MigratedObject:
    for item in OBJECTS:
        if item.name == name:
            return item
    raise KeyError(f"unknown object {name!r}; expected one of {', '.join(o.name for o in OBJECTS)}")
