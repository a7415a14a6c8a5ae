"""Pipedrive's standard fields per object: what a Dynamics column can land on without a custom field.

Taken from the request bodies of Pipedrive's official OpenAPI specs (`/work/shared/specs`): v2
`POST /organizations`, `/persons`, `/deals`, `/products`, `/activities`, `/deals/{id}/products`,
and v1 `POST /leads` and `/notes` (no v2 yet). Internal fields (`custom_fields`, `is_deleted`,
`pinned_to_*_flag`, `origin_id`, ...) are left out: no Dynamics column belongs in them.

`field_type` names what the field holds (Pipedrive's field types where one exists, plus a few
descriptive kinds such as `status` or `prices`), so the proposer can tell a type-compatible
match from a name-only one. `synonyms` are the English phrases a CRM uses for the same thing;
other languages are translated to English by the proposer before matching.

Two person fields are `read_only`: v2 returns `first_name` and `last_name` but only accepts
`name`, from which Pipedrive derives them. They are listed so that "First Name" is recognised
(and not turned into a custom field) and then reported as carried by the full name. Person
`birthday`, `job_title`, `postal_address`, `notes` and `im` are stored only when the company
has contact sync enabled: the proposer still proposes them, provisioning must check.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from migration_pipeline.mapping.spec import TransformName

PipedriveObject = Literal["organization", "person", "deal", "lead", "product", "activity", "note", "deal_product"]

StandardType = Literal[
    "varchar", "text", "integer", "double", "monetary", "date", "datetime", "time", "duration", "enum", "boolean",
    "status", "user", "org", "people", "deal", "lead", "project", "product", "pipeline", "stage", "currency",
    "email", "phone", "im", "address", "prices", "labels", "visibility", "activity_type", "attendees",
]

# Objects whose records take custom fields (DESIGN: activities, notes and files take none; deal
# products have none either). Leads share the deal fields.
TAKES_CUSTOM_FIELDS: frozenset[str] = frozenset({"organization", "person", "deal", "lead", "product"})


class TargetField(BaseModel):
    """One standard Pipedrive field that a Dynamics column can be mapped to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: PipedriveObject
    name: str
    field_type: StandardType
    synonyms: tuple[str, ...] = ()
    transform: TransformName | None = None  # None: chosen from the source column's type
    accepts_many: bool = False  # an array or composite several columns feed (emails, address parts)
    read_only: bool = False  # returned by Pipedrive, not accepted on create


def _fields(obj: PipedriveObject, rows: str) -> tuple[TargetField, ...]:
    """One field per line: `name type synonym|synonym|... [transform] [many] [read_only]`, the
    synonyms with `_` for spaces; a compact table is easier to check against the spec."""
    fields = []
    for row in filter(str.strip, rows.splitlines()):
        name, field_type, synonyms, *flags = row.split()
        transform = next((f for f in flags if f not in ("many", "read_only")), None)
        fields.append(TargetField(
            object=obj, name=name, field_type=field_type,  # type: ignore[arg-type]
            synonyms=tuple(s.replace("_", " ") for s in synonyms.split("|")),
            transform=transform, accepts_many="many" in flags, read_only="read_only" in flags,  # type: ignore[arg-type]
        ))
    return tuple(fields)


_OWNER = "owner_id user owner|assigned_to|responsible|account_manager|sales_rep|account_owner owner"
_SHARED = """
visible_to visibility visibility
label_ids labels labels|tags
"""
_ADD_TIME = "add_time datetime created_on|creation_date|date_created|created"
_ADDRESS = ("address|street|street_1|street_2|street_3|line_1|line_2|city|town|state_or_province|province|postal_code|"
            "zip|zip_code|postcode|country|country_or_region|county|mailing_address address many")

TARGETS: dict[str, tuple[TargetField, ...]] = {
    "organization": _fields("organization", f"""
name varchar account_name|company_name|organization_name
{_OWNER}
{_ADD_TIME}
{_SHARED}
address address {_ADDRESS}
website varchar website|url|homepage|web_address|website_url url
linkedin varchar linkedin|linkedin_profile|linkedin_url|linkedin_page url
industry enum industry|sector|industry_code|vertical|line_of_business option_label
annual_revenue integer annual_revenue|revenue|turnover|yearly_revenue money
employee_count integer number_of_employees|employees|employee_count|headcount|staff|workforce|company_size integer
"""),
    "person": _fields("person", f"""
name varchar full_name|name|contact_name text
first_name varchar first_name|given_name|forename read_only
last_name varchar last_name|surname|family_name read_only
{_OWNER}
org_id org company_name|company|account|organization|parent_customer|employer|parent_account
{_ADD_TIME}
emails email email|email_address|business_email|personal_email|work_email|alternate_email|secondary_email many
phones phone phone|telephone|business_phone|mobile_phone|home_phone|mobile|cell_phone|work_phone|direct_phone|other_phone|fax|phone_number many
{_SHARED}
postal_address address {_ADDRESS}
notes text notes|contact_notes
im im instant_messaging|im|skype|messenger many
birthday date birthday|birth_date|date_of_birth
job_title varchar job_title|title|position|job_position|function
marketing_status enum marketing_status|subscription_status|newsletter|newsletter_subscriber|newsletter_consent option_label
"""),
    "deal": _fields("deal", f"""
title varchar topic|deal_name|opportunity_name|subject|title|name text
{_OWNER}
person_id people contact|primary_contact|parent_contact|contact_person
org_id org account|company|organization|potential_customer|customer|parent_account
pipeline_id pipeline pipeline|process|sales_process|business_process_flow
stage_id stage stage|process_stage|pipeline_stage|deal_stage
value monetary value|amount|deal_value|deal_amount|opportunity_value|estimated_revenue|estimated_value|expected_revenue|estimated_amount|order_value money
currency currency currency|transaction_currency|currency_code
status status status|state|deal_status option_label
probability double probability|close_probability|win_probability|probability_percent|chance
lost_reason varchar lost_reason|reason_lost|loss_reason|reason_for_loss text
close_time datetime actual_close_date|close_date|closed_on|date_closed
won_time datetime won_date|won_on|date_won
lost_time datetime lost_date|lost_on|date_lost
expected_close_date date expected_close_date|estimated_close_date|target_close_date|expected_close|decision_date date
{_SHARED}
is_archived boolean archived
archive_time datetime archive_date|archived_on
"""),
    # `value` is an object {amount, currency}: both the amount and the currency columns feed it.
    "lead": _fields("lead", f"""
title varchar topic|subject|title|lead_name text
{_OWNER}
{_SHARED}
person_id people contact|parent_contact|existing_contact|contact_person
organization_id org account|parent_account|existing_account|organization|company
value monetary value|amount|estimated_value|estimated_amount|currency money many
expected_close_date date expected_close_date|estimated_close_date|decision_date date
was_seen boolean seen|was_seen
channel enum marketing_channel|channel|lead_source|source option_label
channel_id varchar channel_id
"""),
    # `prices` is an array of {currency, price, cost, direct_cost}: price, cost and currency columns feed it.
    "product": _fields("product", f"""
name varchar product_name|name text
code varchar product_code|product_number|product_id|sku|part_number|item_number|article_number|code text
description text description|product_description text
unit varchar unit|unit_of_measure|default_unit|uom text
tax double tax|tax_rate|vat|vat_rate|tax_percent
category enum category|product_category|product_type option_label
{_OWNER}
is_linkable boolean linkable|can_be_added_to_deals
visible_to visibility visibility
prices prices price|list_price|unit_price|standard_cost|cost_price|purchase_price|currency money many
billing_frequency enum billing_frequency option_label
billing_frequency_cycles integer billing_frequency_cycles|billing_cycles
"""),
    "activity": _fields("activity", f"""
subject varchar subject|title|topic text
type activity_type activity_type|type
{_OWNER}
deal_id deal deal|opportunity
lead_id lead lead
person_id people contact|person
org_id org account|organization|company
project_id project project
due_date date due_date|start_date|scheduled_start|start|date datetime
due_time time due_time|start_time datetime
duration duration duration|scheduled_duration
busy boolean busy|show_time_as|free_busy
done boolean done|completed|status|state|activity_status option_label
location address location|place|where text
participants people participants many
attendees attendees attendees|required_attendees|optional_attendees many
public_description text public_description|agenda text
priority enum priority option_label
note text description|note|notes|body|details|comments text
"""),
    # Dynamics notes have a title and a text; Pipedrive notes only content, so both feed it.
    "note": _fields("note", f"""
content text note_text|note|notes|description|content|body|title|subject text many
lead_id lead lead
deal_id deal deal|opportunity
person_id people contact|person
org_id org account|organization
project_id project project
user_id user owner|author owner
{_ADD_TIME}
"""),
    "deal_product": _fields("deal_product", """
product_id product product|existing_product
item_price monetary price_per_unit|unit_price|item_price|price money
quantity double quantity|qty
tax double tax|vat
comments text comments|write_in_product|product_description|description text
discount double discount|manual_discount|discount_amount|discount_percent
billing_frequency enum billing_frequency option_label
billing_start_date date billing_start_date date
"""),
}

# Aliases that the rest of the project uses for the same objects (file names, entity sets).
_ALIASES = {"organizations": "organization", "persons": "person", "people": "person", "deals": "deal",
            "leads": "lead", "products": "product", "activities": "activity", "notes": "note",
            "deal_products": "deal_product"}


def canonical_object(name: str) -> str:
    """'organizations' or 'organization' -> 'organization'; unknown names raise, listing the known ones."""
    key = _ALIASES.get(name, name)
    if key not in TARGETS:
        raise ValueError(f"unknown Pipedrive object {name!r}; expected one of {', '.join(TARGETS)}")
    return key


def targets_for(object_name: str) -> tuple[TargetField, ...]:
    """The standard fields of one Pipedrive object."""
    return TARGETS[canonical_object(object_name)]
