"""The Dataverse schema the sandbox serves: every table, column, choice and relationship.

Names, types, lengths, required levels and choice values follow Microsoft's published entity
reference for Dynamics 365 Sales, so that a client written against the sandbox reads a real
organisation the same way. A sales organisation is never stock, so the catalog also carries what
customised orgs look like: custom columns on standard tables (`cr7f2_` from the Dataverse
default publisher, `new_` from the old default publisher), a custom table with an N:N
relationship to accounts, and a table the application user has no privilege to read.

`ENTITIES` is keyed by logical name; `RELATIONSHIPS` lists the 1:N relationships (derived from
the lookup columns, one per target) and the N:N ones.
"""

from __future__ import annotations

from dataclasses import replace

from migration_pipeline.sandbox.dataset import AttributeDef, EntityDef, OptionDef, RelationshipDef

CUSTOM_PREFIX = "cr7f2_"


# --- attribute builders ---------------------------------------------------------------------


def _options(pairs: dict[int, str]) -> tuple[OptionDef, ...]:
    return tuple(OptionDef(value, label) for value, label in pairs.items())


def primary_id(name: str, display: str = "Id") -> AttributeDef:
    return AttributeDef(name, "Uniqueidentifier", display, required_level="SystemRequired", is_primary_id=True)


def guid(name: str, display: str, **kw: object) -> AttributeDef:
    return AttributeDef(name, "Uniqueidentifier", display, **kw)  # type: ignore[arg-type]


def string(name: str, display: str, max_length: int = 100, fmt: str = "Text", **kw: object) -> AttributeDef:
    return AttributeDef(name, "String", display, max_length=max_length, format=fmt, **kw)  # type: ignore[arg-type]


def memo(name: str, display: str, max_length: int = 2000, **kw: object) -> AttributeDef:
    return AttributeDef(name, "Memo", display, max_length=max_length, format="TextArea", **kw)  # type: ignore[arg-type]


def integer(name: str, display: str, lo: int = -2_147_483_648, hi: int = 2_147_483_647, **kw: object) -> AttributeDef:
    return AttributeDef(name, "Integer", display, min_value=lo, max_value=hi, **kw)  # type: ignore[arg-type]


def decimal(name: str, display: str, precision: int = 2, lo: float = -1e11, hi: float = 1e11, **kw: object) -> AttributeDef:
    return AttributeDef(name, "Decimal", display, precision=precision, min_value=lo, max_value=hi, **kw)  # type: ignore[arg-type]


def money(name: str, display: str, **kw: object) -> tuple[AttributeDef, AttributeDef]:
    """A Money column and its `_base` twin (the value in the organisation's base currency)."""
    value = AttributeDef(name, "Money", display, precision=2, min_value=-922337203685477.0, max_value=922337203685477.0, **kw)  # type: ignore[arg-type]
    base = AttributeDef(f"{name}_base", "Money", f"{display} (Base)", precision=4,
                        description=f"Value of the {display} in base currency.", is_custom=value.is_custom)
    return value, base


def boolean(name: str, display: str, **kw: object) -> AttributeDef:
    return AttributeDef(name, "Boolean", display, options=_options({0: "No", 1: "Yes"}), **kw)  # type: ignore[arg-type]


def date_only(name: str, display: str, **kw: object) -> AttributeDef:
    return AttributeDef(name, "DateTime", display, format="DateOnly", **kw)  # type: ignore[arg-type]


def date_time(name: str, display: str, **kw: object) -> AttributeDef:
    return AttributeDef(name, "DateTime", display, format="DateAndTime", **kw)  # type: ignore[arg-type]


def lookup(name: str, display: str, *targets: str, **kw: object) -> AttributeDef:
    kind = "Lookup"
    if set(targets) == {"account", "contact"}:
        kind = "Customer"
    return AttributeDef(name, kind, display, targets=targets, **kw)  # type: ignore[arg-type]


def picklist(name: str, display: str, pairs: dict[int, str], option_set: str | None = None, **kw: object) -> AttributeDef:
    return AttributeDef(name, "Picklist", display, options=_options(pairs), option_set_name=option_set or name, **kw)  # type: ignore[arg-type]


def entity_name(name: str, display: str) -> AttributeDef:
    return AttributeDef(name, "EntityName", display)


def state_status(
    entity: str, states: dict[int, str], statuses: dict[int, tuple[str, int]]
) -> tuple[AttributeDef, AttributeDef]:
    """`statecode` and `statuscode`; each status option names the state it belongs to."""
    state = AttributeDef("statecode", "State", "Status", options=_options(states),
                         option_set_name=f"{entity}_statecode", required_level="SystemRequired")
    status = AttributeDef("statuscode", "Status", "Status Reason",
                          options=tuple(OptionDef(v, label, state=s) for v, (label, s) in statuses.items()),
                          option_set_name=f"{entity}_statuscode")
    return state, status


def owner() -> AttributeDef:
    return AttributeDef("ownerid", "Owner", "Owner", targets=("systemuser", "team"), required_level="SystemRequired")


def audit_columns() -> tuple[AttributeDef, ...]:
    """`createdon`, `modifiedon` and `versionnumber`, which every non-intersect table carries."""
    return (
        date_time("createdon", "Created On"),
        date_time("modifiedon", "Modified On"),
        AttributeDef("versionnumber", "BigInt", "Version Number"),
    )


def custom(attribute: AttributeDef) -> AttributeDef:
    """The same attribute marked as added by a customisation."""
    return replace(attribute, is_custom=True)


ACTIVE_INACTIVE = ({0: "Active", 1: "Inactive"}, {1: ("Active", 0), 2: ("Inactive", 1)})

INDUSTRY_CODES: dict[int, str] = {
    1: "Accounting",
    2: "Agriculture and Non-petrol Natural Resource Extraction",
    3: "Broadcasting Printing and Publishing",
    4: "Brokers",
    5: "Building Supply Retail",
    6: "Business Services",
    7: "Consulting",
    8: "Consumer Services",
    9: "Design, Direction and Creative Management",
    10: "Distributors, Dispatchers and Processors",
    11: "Doctor's Offices and Clinics",
    12: "Durable Manufacturing",
    13: "Eating and Drinking Places",
    14: "Entertainment Retail",
    15: "Equipment Rental and Leasing",
    16: "Financial",
    17: "Food and Tobacco Processing",
    18: "Inbound Capital Intensive Processing",
    19: "Inbound Repair and Services",
    20: "Insurance",
    21: "Legal Services",
    22: "Non-Durable Merchandise Retail",
    23: "Outbound Consumer Service",
    24: "Petrochemical Extraction and Distribution",
    25: "Service Retail",
    26: "SIG Affiliations",
    27: "Social Services",
    28: "Special Outbound Trade Contractors",
    29: "Specialty Realty",
    30: "Transportation",
    31: "Utility Creation and Distribution",
    32: "Vehicle Retail",
    33: "Wholesale",
}
CUSTOMER_TIERS = {100000000: "Bronze", 100000001: "Silver", 100000002: "Gold", 100000003: "Platinum"}
REGIONS = {100000000: "EMEA", 100000001: "North America", 100000002: "LATAM", 100000003: "APAC"}
SALES_STAGES = {0: "Qualify", 1: "Develop", 2: "Propose", 3: "Close"}
STAGE_CATEGORIES = {0: "Qualify", 1: "Develop", 2: "Propose", 3: "Close", 4: "Identify", 5: "Research", 6: "Resolve", 7: "Approval"}
PARTICIPATION_TYPES = {
    1: "Sender", 2: "To Recipient", 3: "CC Recipient", 4: "BCC Recipient", 5: "Required attendee",
    6: "Optional attendee", 7: "Organizer", 8: "Regarding", 9: "Owner", 10: "Resource", 11: "Customer",
    12: "Chat Participant",
}
WORKFLOW_CATEGORIES = {0: "Workflow", 1: "Dialog", 2: "Business Rule", 3: "Action", 4: "Business Process Flow",
                       5: "Modern Flow", 6: "Desktop Flow", 7: "AI Flow"}
PROJECT_STATUSES = {100000000: "Planned", 100000001: "In Progress", 100000002: "On Hold", 100000003: "Completed"}
REGARDING_TARGETS = ("account", "contact", "opportunity", "lead")


def _industry() -> AttributeDef:
    return picklist("industrycode", "Industry", INDUSTRY_CODES)


# --- tables ---------------------------------------------------------------------------------


def _account() -> EntityDef:
    revenue, revenue_base = money("revenue", "Annual Revenue")
    return EntityDef(
        "account", "accounts", "Account", "Accounts", "accountid", "name", object_type_code=1,
        description="Business that represents a customer or potential customer.",
        attributes=(
            primary_id("accountid", "Account"),
            string("name", "Account Name", 160, required_level="ApplicationRequired", is_primary_name=True),
            string("accountnumber", "Account Number", 20),
            lookup("parentaccountid", "Parent Account", "account"),
            lookup("primarycontactid", "Primary Contact", "contact"),
            string("websiteurl", "Website", 200, "Url"),
            _industry(),
            integer("numberofemployees", "Number of Employees", 0, 1_000_000_000),
            revenue, revenue_base,
            lookup("transactioncurrencyid", "Currency", "transactioncurrency"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11),
            string("telephone1", "Main Phone", 50, "Phone"),
            string("emailaddress1", "Email", 100, "Email"),
            string("address1_line1", "Address 1: Street 1", 250),
            string("address1_city", "Address 1: City", 80),
            string("address1_stateorprovince", "Address 1: State/Province", 50),
            string("address1_postalcode", "Address 1: ZIP/Postal Code", 20),
            string("address1_country", "Address 1: Country/Region", 80),
            memo("description", "Description"),
            custom(picklist("cr7f2_customertier", "Customer Tier", CUSTOMER_TIERS)),
            AttributeDef("new_region", "MultiSelectPicklist", "Regions", is_custom=True,
                         options=_options(REGIONS), option_set_name="new_region", is_global_option_set=True),
            owner(),
            *state_status("account", *ACTIVE_INACTIVE),
            *audit_columns(),
        ),
    )


def _contact() -> EntityDef:
    return EntityDef(
        "contact", "contacts", "Contact", "Contacts", "contactid", "fullname", object_type_code=2,
        description="Person with whom a business unit has a relationship, such as customer, supplier, and colleague.",
        attributes=(
            primary_id("contactid", "Contact"),
            string("firstname", "First Name", 50, required_level="Recommended"),
            string("lastname", "Last Name", 50, required_level="ApplicationRequired"),
            string("fullname", "Full Name", 160, is_primary_name=True),
            string("jobtitle", "Job Title", 100),
            lookup("parentcustomerid", "Company Name", "account", "contact"),
            string("emailaddress1", "Email", 100, "Email"),
            string("emailaddress2", "Email Address 2", 100, "Email"),
            string("emailaddress3", "Email Address 3", 100, "Email"),
            string("telephone1", "Business Phone", 50, "Phone"),
            string("telephone2", "Home Phone", 50, "Phone"),
            string("mobilephone", "Mobile Phone", 50, "Phone"),
            string("address1_line1", "Address 1: Street 1", 250),
            string("address1_city", "Address 1: City", 80),
            string("address1_postalcode", "Address 1: ZIP/Postal Code", 20),
            string("address1_country", "Address 1: Country/Region", 80),
            date_only("birthdate", "Birthday"),
            custom(string("cr7f2_linkedinurl", "LinkedIn Profile", 200, "Url")),
            owner(),
            *state_status("contact", *ACTIVE_INACTIVE),
            *audit_columns(),
        ),
    )


OPPORTUNITY_STATES = {0: "Open", 1: "Won", 2: "Lost"}
OPPORTUNITY_STATUSES = {1: ("In Progress", 0), 2: ("On Hold", 0), 3: ("Won", 1), 4: ("Canceled", 2), 5: ("Out-Sold", 2)}


def _opportunity() -> EntityDef:
    estimated, estimated_base = money("estimatedvalue", "Est. Revenue")
    actual, actual_base = money("actualvalue", "Actual Revenue")
    return EntityDef(
        "opportunity", "opportunities", "Opportunity", "Opportunities", "opportunityid", "name", object_type_code=3,
        description="Potential revenue-generating event, or sale to an account, which needs to be tracked through a sales process to completion.",
        attributes=(
            primary_id("opportunityid", "Opportunity"),
            string("name", "Topic", 300, required_level="ApplicationRequired", is_primary_name=True),
            lookup("customerid", "Potential Customer", "account", "contact", required_level="ApplicationRequired"),
            lookup("parentaccountid", "Account", "account"),
            lookup("parentcontactid", "Contact", "contact"),
            lookup("transactioncurrencyid", "Currency", "transactioncurrency", required_level="ApplicationRequired"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11),
            estimated, estimated_base, actual, actual_base,
            integer("closeprobability", "Probability", 0, 100),
            date_only("estimatedclosedate", "Est. Close Date"),
            date_only("actualclosedate", "Actual Close Date"),
            lookup("processid", "Process", "workflow"),
            lookup("stageid", "Process Stage", "processstage"),
            string("stepname", "Pipeline Phase", 200),
            picklist("salesstage", "Sales Stage", SALES_STAGES),
            lookup("pricelevelid", "Price List", "pricelevel"),
            lookup("originatingleadid", "Originating Lead", "lead"),
            memo("description", "Description"),
            custom(date_only("cr7f2_renewaldate", "Renewal Date")),
            owner(),
            *state_status("opportunity", OPPORTUNITY_STATES, OPPORTUNITY_STATUSES),
            *audit_columns(),
        ),
    )


LEAD_STATES = {0: "Open", 1: "Qualified", 2: "Disqualified"}
LEAD_STATUSES = {1: ("New", 0), 2: ("Contacted", 0), 3: ("Qualified", 1), 4: ("Lost", 2), 5: ("Cannot Contact", 2),
                 6: ("No Longer Interested", 2), 7: ("Canceled", 2)}
LEAD_SOURCES = {1: "Advertisement", 2: "Employee Referral", 3: "External Referral", 4: "Partner", 5: "Public Relations",
                6: "Seminar", 7: "Trade Show", 8: "Web", 9: "Word of Mouth", 10: "Other"}


def _lead() -> EntityDef:
    amount, amount_base = money("estimatedamount", "Est. Value")
    return EntityDef(
        "lead", "leads", "Lead", "Leads", "leadid", "fullname", object_type_code=4,
        description="Prospect or potential sales opportunity.",
        attributes=(
            primary_id("leadid", "Lead"),
            string("subject", "Topic", 300, required_level="ApplicationRequired"),
            string("firstname", "First Name", 50, required_level="Recommended"),
            string("lastname", "Last Name", 50, required_level="ApplicationRequired"),
            string("fullname", "Name", 160, is_primary_name=True),
            string("companyname", "Company Name", 100, required_level="Recommended"),
            string("jobtitle", "Job Title", 100),
            string("emailaddress1", "Email", 100, "Email"),
            string("telephone1", "Business Phone", 50, "Phone"),
            string("mobilephone", "Mobile Phone", 20, "Phone"),
            string("websiteurl", "Website", 200, "Url"),
            _industry(),
            picklist("leadsourcecode", "Lead Source", LEAD_SOURCES),
            picklist("leadqualitycode", "Rating", {1: "Hot", 2: "Warm", 3: "Cold"}),
            lookup("qualifyingopportunityid", "Qualifying Opportunity", "opportunity"),
            lookup("parentaccountid", "Parent Account for lead", "account"),
            lookup("parentcontactid", "Parent Contact for lead", "contact"),
            lookup("transactioncurrencyid", "Currency", "transactioncurrency"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11),
            amount, amount_base,
            owner(),
            *state_status("lead", LEAD_STATES, LEAD_STATUSES),
            *audit_columns(),
        ),
    )


# Activity states: the typed tables use 0 Open / 1 Completed / 2 Canceled (appointments add
# 3 Scheduled); each type has its own status reasons.
ACTIVITY_STATES = {0: "Open", 1: "Completed", 2: "Canceled"}
ACTIVITY_STATUSES: dict[str, tuple[dict[int, str], dict[int, tuple[str, int]]]] = {
    "activitypointer": ({**ACTIVITY_STATES, 3: "Scheduled"},
                        {1: ("Open", 0), 2: ("Completed", 1), 3: ("Canceled", 2), 4: ("Scheduled", 3)}),
    "phonecall": (ACTIVITY_STATES, {1: ("Open", 0), 2: ("Made", 1), 4: ("Received", 1), 3: ("Canceled", 2)}),
    "email": (ACTIVITY_STATES, {1: ("Draft", 0), 8: ("Failed", 0), 2: ("Completed", 1), 3: ("Sent", 1),
                                4: ("Received", 1), 6: ("Pending Send", 1), 7: ("Sending", 1), 5: ("Canceled", 2)}),
    "task": (ACTIVITY_STATES, {2: ("Not Started", 0), 3: ("In Progress", 0), 4: ("Waiting on someone else", 0),
                               7: ("Deferred", 0), 5: ("Completed", 1), 6: ("Canceled", 2)}),
    "appointment": ({**ACTIVITY_STATES, 3: "Scheduled"},
                    {1: ("Free", 0), 2: ("Tentative", 0), 3: ("Completed", 1), 4: ("Canceled", 2),
                     5: ("Busy", 3), 6: ("Out of Office", 3)}),
}
ACTIVITY_TYPES: dict[str, tuple[str, str, int]] = {
    # logical name -> (entity set, display name, object type code)
    "phonecall": ("phonecalls", "Phone Call", 4210),
    "email": ("emails", "Email", 4202),
    "task": ("tasks", "Task", 4212),
    "appointment": ("appointments", "Appointment", 4201),
}


def _activity_shared(entity: str) -> tuple[AttributeDef, ...]:
    return (
        primary_id("activityid", "Activity"),
        entity_name("activitytypecode", "Activity Type"),
        string("subject", "Subject", 400, is_primary_name=True),
        memo("description", "Description", 100_000),
        date_time("scheduledstart", "Start Date"),
        date_time("scheduledend", "Due Date"),
        date_time("actualstart", "Actual Start"),
        date_time("actualend", "Actual End"),
        integer("actualdurationminutes", "Actual Duration", 0, 2_147_483_647),
        integer("scheduleddurationminutes", "Scheduled Duration", 0, 2_147_483_647),
        picklist("prioritycode", "Priority", {0: "Low", 1: "Normal", 2: "High"}, option_set=f"{entity}_prioritycode"),
        lookup("regardingobjectid", "Regarding", *REGARDING_TARGETS),
        owner(),
        *state_status(entity, *ACTIVITY_STATUSES[entity]),
        *audit_columns(),
    )


ACTIVITY_SPECIFIC: dict[str, tuple[AttributeDef, ...]] = {
    "phonecall": (string("phonenumber", "Phone Number", 200, "Phone"), boolean("directioncode", "Direction")),
    "email": (string("sender", "From", 250, "Email"), string("torecipients", "To Recipients", 500),
              boolean("directioncode", "Direction")),
    "task": (integer("percentcomplete", "Percent Complete", 0, 100),),
    "appointment": (string("location", "Location", 200), boolean("isalldayevent", "All Day Event")),
}


def _activities() -> list[EntityDef]:
    entities = [EntityDef(
        "activitypointer", "activitypointers", "Activity", "Activities", "activityid", "subject",
        object_type_code=4200, description="Task performed, or to be performed, by a user.",
        attributes=_activity_shared("activitypointer"),
    )]
    for name, (entity_set, display, code) in ACTIVITY_TYPES.items():
        entities.append(EntityDef(
            name, entity_set, display, f"{display}s", "activityid", "subject", object_type_code=code,
            is_activity=True, attributes=_activity_shared(name) + ACTIVITY_SPECIFIC[name],
        ))
    return entities


def _activityparty() -> EntityDef:
    return EntityDef(
        "activityparty", "activityparties", "Activity Party", "Activity Parties", "activitypartyid", None,
        object_type_code=135, change_tracking_enabled=False,
        description="Person or group associated with an activity. An activity can have multiple activity parties.",
        attributes=(
            primary_id("activitypartyid", "Activity Party"),
            lookup("activityid", "Activity", "activitypointer"),
            lookup("partyid", "Party", "account", "contact", "lead", "systemuser"),
            string("addressused", "Address", 320),
            picklist("participationtypemask", "Participation Type", PARTICIPATION_TYPES),
            *audit_columns(),
        ),
    )


PRODUCT_STATES = {0: "Active", 1: "Retired", 2: "Draft", 3: "Under Revision"}
PRODUCT_STATUSES = {1: ("Active", 0), 2: ("Retired", 1), 0: ("Draft", 2), 3: ("Under Revision", 3)}


def _product() -> EntityDef:
    price, price_base = money("price", "List Price")
    standard, standard_base = money("standardcost", "Standard Cost")
    current, current_base = money("currentcost", "Current Cost")
    return EntityDef(
        "product", "products", "Product", "Products", "productid", "name", object_type_code=1024,
        description="Information about products and their pricing information.",
        attributes=(
            primary_id("productid", "Product"),
            string("name", "Name", 100, required_level="ApplicationRequired", is_primary_name=True),
            string("productnumber", "Product ID", 100, required_level="ApplicationRequired"),
            memo("description", "Description"),
            price, price_base, standard, standard_base, current, current_base,
            picklist("producttypecode", "Product Type", {1: "Sales Inventory", 2: "Miscellaneous Charges", 3: "Services", 4: "Flat Fees"}),
            picklist("productstructure", "Product Structure", {1: "Product", 2: "Product Family", 3: "Product Bundle"}),
            integer("quantitydecimal", "Decimals Supported", 0, 5),
            lookup("pricelevelid", "Default Price List", "pricelevel"),
            lookup("transactioncurrencyid", "Currency", "transactioncurrency"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11),
            *state_status("product", PRODUCT_STATES, PRODUCT_STATUSES),
            *audit_columns(),
        ),
    )


def _productassociation() -> EntityDef:
    return EntityDef(
        "productassociation", "productassociations", "Product Association", "Product Associations",
        "productassociationid", None, object_type_code=1025,
        description="Instance of a product added to a bundle or kit.",
        attributes=(
            primary_id("productassociationid", "Product Association"),
            lookup("productid", "Product", "product", required_level="ApplicationRequired"),
            lookup("associatedproduct", "Associated Product", "product", required_level="ApplicationRequired"),
            decimal("quantity", "Quantity", 5, 0, 1e9),
            picklist("productisrequired", "Required", {0: "Optional", 1: "Required"}),
            *state_status("productassociation", PRODUCT_STATES, PRODUCT_STATUSES),
            *audit_columns(),
        ),
    )


def _pricelevel() -> EntityDef:
    return EntityDef(
        "pricelevel", "pricelevels", "Price List", "Price Lists", "pricelevelid", "name", object_type_code=1022,
        description="Entity that defines pricing levels.",
        attributes=(
            primary_id("pricelevelid", "Price List"),
            string("name", "Name", 100, required_level="ApplicationRequired", is_primary_name=True),
            lookup("transactioncurrencyid", "Currency", "transactioncurrency", required_level="ApplicationRequired"),
            date_only("begindate", "Start Date"),
            date_only("enddate", "End Date"),
            memo("description", "Description"),
            *state_status("pricelevel", {0: "Active", 1: "Inactive"}, {100001: ("Active", 0), 100002: ("Inactive", 1)}),
            *audit_columns(),
        ),
    )


def _productpricelevel() -> EntityDef:
    amount, amount_base = money("amount", "Amount")
    return EntityDef(
        "productpricelevel", "productpricelevels", "Price List Item", "Price List Items", "productpricelevelid", None,
        object_type_code=1026, description="Information about how to price a product in the specified price level.",
        attributes=(
            primary_id("productpricelevelid", "Price List Item"),
            lookup("pricelevelid", "Price List", "pricelevel", required_level="ApplicationRequired"),
            lookup("productid", "Product", "product", required_level="ApplicationRequired"),
            amount, amount_base,
            picklist("pricingmethodcode", "Pricing Method", {1: "Currency Amount", 2: "Percent of List",
                     3: "Percent Markup - Current Cost", 4: "Percent Margin - Current Cost",
                     5: "Percent Markup - Standard Cost", 6: "Percent Margin - Standard Cost"}),
            decimal("percentage", "Percentage", 2, 0, 1500),
            lookup("transactioncurrencyid", "Currency", "transactioncurrency"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11),
            *audit_columns(),
        ),
    )


def _opportunityproduct() -> EntityDef:
    money_columns = [a for name, display in (("priceperunit", "Price Per Unit"), ("baseamount", "Amount"),
                                              ("manualdiscountamount", "Manual Discount"), ("tax", "Tax"),
                                              ("extendedamount", "Extended Amount"))
                     for a in money(name, display)]
    return EntityDef(
        "opportunityproduct", "opportunityproducts", "Opportunity Product", "Opportunity Products",
        "opportunityproductid", "opportunityproductname", object_type_code=1083,
        description="Association between an opportunity and a product.",
        attributes=(
            primary_id("opportunityproductid", "Opportunity Product"),
            string("opportunityproductname", "Name", 500, is_primary_name=True),
            lookup("opportunityid", "Opportunity", "opportunity", required_level="ApplicationRequired"),
            lookup("productid", "Existing Product", "product"),
            string("productdescription", "Write-In Product", 500),
            boolean("isproductoverridden", "Select Product"),
            boolean("ispriceoverridden", "Pricing"),
            decimal("quantity", "Quantity", 5, 0, 1e9, required_level="ApplicationRequired"),
            *money_columns,
            integer("lineitemnumber", "Line Item Number", 0, 2_147_483_647),
            lookup("parentbundleidref", "Parent Bundle", "opportunityproduct"),
            lookup("transactioncurrencyid", "Currency", "transactioncurrency"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11),
            *audit_columns(),
        ),
    )


def _annotation() -> EntityDef:
    return EntityDef(
        "annotation", "annotations", "Note", "Notes", "annotationid", "subject", object_type_code=5,
        description="Note that is attached to one or more objects, including other notes.",
        attributes=(
            primary_id("annotationid", "Note"),
            string("subject", "Title", 500, is_primary_name=True),
            memo("notetext", "Description", 100_000),
            boolean("isdocument", "Is Document"),
            string("filename", "File Name", 255),
            string("mimetype", "Mime Type", 256),
            integer("filesize", "File Size (Bytes)", 0, 2_147_483_647),
            # Served by the simulator from `DataverseDataset.attachments`, never stored in the table.
            memo("documentbody", "Document", 1_073_741_823),
            entity_name("objecttypecode", "Object Type"),
            lookup("objectid", "Regarding", *REGARDING_TARGETS),
            owner(),
            *audit_columns(),
        ),
    )


def _systemuser() -> EntityDef:
    return EntityDef(
        "systemuser", "systemusers", "User", "Users", "systemuserid", "fullname", object_type_code=8,
        description="Person with access to the Microsoft CRM system and who owns objects in the Microsoft CRM database.",
        attributes=(
            primary_id("systemuserid", "User"),
            string("fullname", "Full Name", 200, is_primary_name=True),
            string("firstname", "First Name", 64, required_level="Recommended"),
            string("lastname", "Last Name", 64, required_level="ApplicationRequired"),
            string("internalemailaddress", "Primary Email", 100, "Email", required_level="ApplicationRequired"),
            string("domainname", "User Name", 1024, required_level="ApplicationRequired"),
            string("title", "Title", 128),
            boolean("isdisabled", "Status"),
            picklist("accessmode", "Access Mode", {0: "Read-Write", 1: "Administrative", 2: "Read", 3: "Support User",
                                                   4: "Non-interactive", 5: "Delegated Admin"}),
            guid("applicationid", "Application ID"),
            *audit_columns(),
        ),
    )


def _team() -> EntityDef:
    return EntityDef(
        "team", "teams", "Team", "Teams", "teamid", "name", object_type_code=9,
        description="Collection of system users that routinely collaborate. Teams can be used to simplify record sharing.",
        attributes=(
            primary_id("teamid", "Team"),
            string("name", "Team Name", 160, required_level="ApplicationRequired", is_primary_name=True),
            picklist("teamtype", "Team Type", {0: "Owner", 1: "Access", 2: "Security Group", 3: "Office Group"}),
            lookup("administratorid", "Administrator", "systemuser", required_level="SystemRequired"),
            boolean("isdefault", "Is Default"),
            memo("description", "Description"),
            *audit_columns(),
        ),
    )


def _transactioncurrency() -> EntityDef:
    return EntityDef(
        "transactioncurrency", "transactioncurrencies", "Currency", "Currencies", "transactioncurrencyid",
        "currencyname", object_type_code=9105, change_tracking_enabled=False,
        description="Currency in which a financial transaction is carried out.",
        attributes=(
            primary_id("transactioncurrencyid", "Transaction Currency"),
            string("currencyname", "Currency Name", 100, required_level="ApplicationRequired", is_primary_name=True),
            string("isocurrencycode", "Currency Code", 5, required_level="ApplicationRequired"),
            string("currencysymbol", "Currency Symbol", 10, required_level="ApplicationRequired"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11, required_level="ApplicationRequired"),
            integer("currencyprecision", "Currency Precision", 0, 4),
            *state_status("transactioncurrency", *ACTIVE_INACTIVE),
            *audit_columns(),
        ),
    )


def _organization() -> EntityDef:
    return EntityDef(
        "organization", "organizations", "Organization", "Organizations", "organizationid", "name",
        object_type_code=1019, change_tracking_enabled=False,
        description="Top level of the Microsoft Dynamics 365 business hierarchy.",
        attributes=(
            primary_id("organizationid", "Organization"),
            string("name", "Organization Name", 160, is_primary_name=True),
            lookup("basecurrencyid", "Currency", "transactioncurrency"),
            integer("maxuploadfilesize", "Max Upload File Size", 0, 131_072_000),
            integer("expirechangetrackingindays", "Days to Expire Change Tracking Deleted Records", 0, 365),
            *audit_columns(),
        ),
    )


def _workflow() -> EntityDef:
    return EntityDef(
        "workflow", "workflows", "Process", "Processes", "workflowid", "name", object_type_code=4703,
        change_tracking_enabled=False,
        description="Set of logical rules that define the steps necessary to automate a specific business process.",
        attributes=(
            primary_id("workflowid", "Process"),
            string("name", "Process Name", 100, required_level="SystemRequired", is_primary_name=True),
            string("uniquename", "Unique Name", 256),
            picklist("category", "Category", WORKFLOW_CATEGORIES),
            entity_name("primaryentity", "Primary Entity"),
            picklist("type", "Type", {1: "Definition", 2: "Activation", 3: "Template"}),
            picklist("mode", "Execute As", {0: "Background", 1: "Real-time"}),
            picklist("scope", "Scope", {1: "User", 2: "Business Unit", 3: "Parent: Child Business Units", 4: "Organization"}),
            memo("description", "Description"),
            owner(),
            *state_status("workflow", {0: "Draft", 1: "Activated", 2: "Suspended"},
                          {1: ("Draft", 0), 2: ("Activated", 1), 3: ("Company DLP Violation", 2)}),
            *audit_columns(),
        ),
    )


def _processstage() -> EntityDef:
    return EntityDef(
        "processstage", "processstages", "Process Stage", "Process Stages", "processstageid", "stagename",
        object_type_code=4724, change_tracking_enabled=False,
        description="Stage associated with a process.",
        attributes=(
            primary_id("processstageid", "Process Stage"),
            string("stagename", "Stage Name", 100, is_primary_name=True),
            picklist("stagecategory", "Stage Category", STAGE_CATEGORIES),
            lookup("processid", "Process", "workflow"),
            entity_name("primaryentitytypecode", "Primary Entity"),
            *audit_columns(),
        ),
    )


def _sdkmessageprocessingstep() -> EntityDef:
    return EntityDef(
        "sdkmessageprocessingstep", "sdkmessageprocessingsteps", "Sdk Message Processing Step",
        "Sdk Message Processing Steps", "sdkmessageprocessingstepid", "name", object_type_code=4608,
        change_tracking_enabled=False, readable=False,
        description="Stage in the execution pipeline that a plug-in is to execute.",
        attributes=(
            primary_id("sdkmessageprocessingstepid", "Sdk Message Processing Step"),
            string("name", "Name", 256, is_primary_name=True),
            memo("description", "Description", 256),
            picklist("stage", "Execution Stage", {10: "Pre-validation", 20: "Pre-operation", 30: "Main Operation",
                                                  40: "Post-operation"}),
            picklist("mode", "Execution Mode", {0: "Synchronous", 1: "Asynchronous"}),
            integer("rank", "Execution Order", 0, 2_147_483_647),
            memo("filteringattributes", "Filtering Attributes", 100_000),
            *state_status("sdkmessageprocessingstep", {0: "Enabled", 1: "Disabled"}, {1: ("Enabled", 0), 2: ("Disabled", 1)}),
            *audit_columns(),
        ),
    )


def _project() -> EntityDef:
    budget, budget_base = money("cr7f2_budget", "Budget", is_custom=True)
    return EntityDef(
        "cr7f2_project", "cr7f2_projects", "Project", "Projects", "cr7f2_projectid", "cr7f2_name",
        object_type_code=10342, is_custom=True,
        description="Customer delivery projects, tracked alongside the sales pipeline.",
        attributes=(
            primary_id("cr7f2_projectid", "Project"),
            custom(string("cr7f2_name", "Name", 100, required_level="ApplicationRequired", is_primary_name=True)),
            custom(lookup("cr7f2_accountid", "Account", "account")),
            budget, budget_base,
            lookup("transactioncurrencyid", "Currency", "transactioncurrency"),
            decimal("exchangerate", "Exchange Rate", 10, 1e-10, 1e11),
            custom(date_only("cr7f2_startdate", "Start Date")),
            custom(picklist("cr7f2_projectstatus", "Project Status", PROJECT_STATUSES)),
            custom(boolean("cr7f2_ishighpriority", "High Priority")),
            custom(integer("cr7f2_estimatedhours", "Estimated Hours", 0, 100_000)),
            owner(),
            *state_status("cr7f2_project", *ACTIVE_INACTIVE),
            *audit_columns(),
        ),
    )


def _project_account() -> EntityDef:
    return EntityDef(
        "cr7f2_project_account", "cr7f2_project_accountset", "cr7f2_project_account", "cr7f2_project_account",
        "cr7f2_project_accountid", None, object_type_code=10343, is_custom=True, is_intersect=True,
        change_tracking_enabled=False,
        attributes=(
            primary_id("cr7f2_project_accountid", "cr7f2_project_account"),
            guid("cr7f2_projectid", "cr7f2_projectid", is_custom=True),
            guid("accountid", "accountid"),
            AttributeDef("versionnumber", "BigInt", "Version Number"),
        ),
    )


# --- relationships --------------------------------------------------------------------------

# Well-known schema names of standard relationships; the rest are named by the pattern
# `<referenced>_<referencing>_<attribute>`.
_KNOWN_RELATIONSHIPS = {
    ("account", "parentaccountid", "account"): "account_parent_account",
    ("account", "primarycontactid", "contact"): "account_primary_contact",
    ("contact", "parentcustomerid", "account"): "contact_customer_accounts",
    ("contact", "parentcustomerid", "contact"): "contact_customer_contacts",
    ("opportunity", "customerid", "account"): "opportunity_customer_accounts",
    ("opportunity", "customerid", "contact"): "opportunity_customer_contacts",
    ("opportunity", "parentaccountid", "account"): "opportunity_parent_account",
    ("opportunity", "parentcontactid", "contact"): "opportunity_parent_contact",
    ("opportunity", "originatingleadid", "lead"): "opportunity_originating_lead",
    ("lead", "qualifyingopportunityid", "opportunity"): "lead_qualifying_opportunity",
    ("opportunityproduct", "opportunityid", "opportunity"): "opportunity_products",
    ("opportunityproduct", "productid", "product"): "product_opportunities",
    ("annotation", "objectid", "account"): "Account_Annotation",
    ("annotation", "objectid", "contact"): "Contact_Annotation",
    ("annotation", "objectid", "opportunity"): "Opportunity_Annotation",
    ("annotation", "objectid", "lead"): "Lead_Annotation",
    ("processstage", "processid", "workflow"): "process_processstage",
    ("cr7f2_project", "cr7f2_accountid", "account"): "cr7f2_account_cr7f2_project_accountid",
}


def _one_to_many(entities: dict[str, EntityDef]) -> list[RelationshipDef]:
    relationships = []
    for entity in entities.values():
        for attribute in entity.attributes:
            if attribute.attribute_type not in ("Lookup", "Customer", "Owner"):
                continue
            for target in attribute.targets:
                key = (entity.logical_name, attribute.logical_name, target)
                schema = _KNOWN_RELATIONSHIPS.get(key, f"{target}_{entity.logical_name}_{attribute.logical_name}")
                navigation = f"{attribute.logical_name}_{target}" if attribute.is_polymorphic else attribute.logical_name
                relationships.append(RelationshipDef(
                    schema, "OneToManyRelationship", is_custom=attribute.is_custom or entity.is_custom,
                    referenced_entity=target, referenced_attribute=entities[target].primary_id_attribute,
                    referencing_entity=entity.logical_name, referencing_attribute=attribute.logical_name,
                    referenced_entity_navigation_property_name=schema,
                    referencing_entity_navigation_property_name=navigation,
                ))
    return relationships


def _build() -> tuple[dict[str, EntityDef], list[RelationshipDef]]:
    entities = [
        _account(), _contact(), _opportunity(), _lead(), *_activities(), _activityparty(), _product(),
        _productassociation(), _pricelevel(), _productpricelevel(), _opportunityproduct(), _annotation(),
        _systemuser(), _team(), _transactioncurrency(), _organization(), _workflow(), _processstage(),
        _sdkmessageprocessingstep(), _project(), _project_account(),
    ]
    by_name = {entity.logical_name: entity for entity in entities}
    relationships = _one_to_many(by_name)
    relationships.append(RelationshipDef(
        "cr7f2_project_account", "ManyToManyRelationship", is_custom=True,
        entity1_logical_name="cr7f2_project", entity2_logical_name="account",
        intersect_entity_name="cr7f2_project_account",
        entity1_intersect_attribute="cr7f2_projectid", entity2_intersect_attribute="accountid",
    ))
    return by_name, relationships


ENTITIES, RELATIONSHIPS = _build()
