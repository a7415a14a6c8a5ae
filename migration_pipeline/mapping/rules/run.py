"""Every object's rules in dependency order, over the raw tables of one extract.

Later objects point at earlier ones (a person at its organization, an activity at its deal), so
the rules run in load order and each registers where its records landed (`Links`) before the
next runs. Records a rule makes for another object (the placeholder organization, the persons
and organizations made for leads, write-in products) join that object's staged rows here, and
custom entities' fields join their target's rows, so each `ObjectStage` is complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from migration_pipeline.mapping.rules.activities import LEAD_PERSON, transform_activities
from migration_pipeline.mapping.custom_entities import CustomEntityPlan
from migration_pipeline.mapping.rules.common import MERGED_COLUMNS, REJECT_COLUMNS, Links, ObjectStage, RuleContext
from migration_pipeline.mapping.rules.custom_entities import transform_custom_entity
from migration_pipeline.mapping.rules.deal_products import transform_deal_products
from migration_pipeline.mapping.rules.deals import transform_deals
from migration_pipeline.mapping.rules.files import transform_files
from migration_pipeline.mapping.rules.leads import transform_leads
from migration_pipeline.mapping.rules.notes import transform_notes
from migration_pipeline.mapping.rules.persons import transform_persons
from migration_pipeline.mapping.rules.products import transform_products

# In load order (DESIGN.md), then the custom entities, which only add fields to earlier objects.
OBJECTS = ("organizations", "persons", "products", "deals", "deal_products", "leads", "activities", "notes", "files")


def transform_all(
    raw: Mapping[str, pd.DataFrame],
    context: RuleContext,
    organizations: ObjectStage,
    custom_entities: Sequence[CustomEntityPlan] = (),
) -> dict[str, ObjectStage]:
    """`raw` maps entity set -> raw table; returns one stage per object, and one per custom entity of the plan.

    `organizations` is the accounts' stage (`stage_organizations`: the workbook's fields and the
    parent links); `custom_entities` is the confirmed `custom_entities.yaml` (`CustomEntityMap.entities`).
    """
    links = Links()
    currencies = raw["transactioncurrencies"]
    links.add("account", organizations)
    persons = transform_persons(raw["contacts"], context, links)
    organizations = with_rows(organizations, persons.extra.get("placeholder_organizations"))
    links.add("contact", persons)
    products = transform_products(raw["products"], raw["productpricelevels"], raw["pricelevels"], raw["productassociations"], currencies, context)
    links.add("product", products)
    deals = transform_deals(raw["opportunities"], currencies, context, links)
    links.add("opportunity", deals)
    deal_products = transform_deal_products(raw["opportunityproducts"], raw["products"], raw["productassociations"], raw["productpricelevels"],
                                            raw["pricelevels"], currencies, context, links)
    products = with_rows(products, deal_products.extra["write_in_products"])
    leads = transform_leads(raw["leads"], currencies, context, links, organizations.staged[["source_id", "name"]])
    organizations = with_rows(organizations, leads.extra["organizations"])
    persons = with_rows(persons, leads.extra["persons"])
    links.add("lead", leads)
    links.alias(LEAD_PERSON, leads.extra["lead_persons"]["source_id"], "persons", leads.extra["lead_persons"]["person"])
    activities = transform_activities(raw["phonecalls"], raw["emails"], raw["tasks"], raw["appointments"], raw["activityparties"],
                                      context, links, raw.get("activitypointers"))
    notes = transform_notes(raw["annotations"], context, links)
    files = transform_files(raw["annotations"], context, links)
    stages = {
        "organizations": organizations, "persons": persons, "products": products, "deals": deals, "deal_products": deal_products,
        "leads": leads, "activities": activities, "notes": notes, "files": files,
    }
    for plan in custom_entities:
        intersect = raw.get(plan.intersect_entity_set) if plan.intersect_entity_set else None
        stage = transform_custom_entity(raw[plan.entity_set], intersect, plan, context, links, currencies)
        if plan.target_object != "none":
            stages[plan.target_object] = with_fields(stages[plan.target_object], stage.extra["fields"])
        stages[plan.entity_set] = stage
    return stages


def with_rows(stage: ObjectStage, rows: pd.DataFrame | None) -> ObjectStage:
    """`stage` with staged rows another rule made for this object appended."""
    if rows is None or not len(rows):
        return stage
    staged = pd.concat([stage.staged, rows], ignore_index=True)
    return ObjectStage(stage.object, tidy(staged), stage.rejects, stage.merged, stage.extra)


def with_fields(stage: ObjectStage, fields: pd.DataFrame) -> ObjectStage:
    """`stage` with custom-entity fields joined onto its staged rows by source id."""
    staged = stage.staged.merge(fields, on="source_id", how="left")
    return ObjectStage(stage.object, tidy(staged), stage.rejects, stage.merged, stage.extra)


def tidy(staged: pd.DataFrame) -> pd.DataFrame:
    """Columns that joining left as NaN hold None again (staged values stay plain JSON)."""
    for column in staged.columns:
        if staged[column].dtype == object or isinstance(staged[column].dtype, pd.StringDtype):
            staged[column] = staged[column].astype(object).where(staged[column].notna(), None)
    return staged


def all_rejects(stages: Mapping[str, ObjectStage]) -> pd.DataFrame:
    """`staged.rejects`: every object's rejects in one table."""
    frames = [stage.rejects for stage in stages.values() if len(stage.rejects)]
    return pd.concat(frames, ignore_index=True)[REJECT_COLUMNS] if frames else pd.DataFrame(columns=REJECT_COLUMNS)


def all_merged(stages: Mapping[str, ObjectStage]) -> pd.DataFrame:
    frames = [stage.merged for stage in stages.values() if len(stage.merged)]
    return pd.concat(frames, ignore_index=True)[MERGED_COLUMNS] if frames else pd.DataFrame(columns=MERGED_COLUMNS)
