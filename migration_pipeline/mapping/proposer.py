"""The field-map proposer: for every Dynamics column, where it should go in Pipedrive, and why.

Pure and offline: it reads only the Dataverse metadata (names, labels, descriptions, types,
formats, options) and, when given, a sample of the extracted values. Every attribute gets
exactly one `FieldProposal`, with a status a person can act on:

- `mapped`: a standard field that fits by name and type, or a new custom field when no
  standard field comes close (or the column is the record's id, kept as "Dynamics ID");
- `needs_decision`: plausible but ambiguous (a middling name match, a standard field of an
  incompatible type, or a standard field another column fills better). The default, which
  `migrate confirm` takes, is a new custom field of the inferred type; `alternative` names the
  standard field a person may prefer. Objects that take no custom fields (activities, notes)
  default to not migrating the column;
- `not_migrated`: system and bookkeeping columns, redundant copies, and columns another step
  carries (the parent account becomes an organization relationship), each with its reason.

Matching is deterministic and explainable: names and labels are normalised (publisher prefix
stripped, concatenated words split, abbreviations expanded, German/French/Spanish/Dutch words
translated), compared with each standard field's name and synonyms by a weighted token overlap,
then checked against a Dataverse-type -> Pipedrive-type compatibility table. Sample values
refine an untyped text column (emails, phones, URLs, dates, numbers, enums, sets).

DateAndTime columns with no standard field become `date` custom fields: Pipedrive has no
datetime custom field, and a date can be filtered, sorted and reported on, which a varchar
holding an ISO timestamp cannot; the time of day is lost and the reason says so. The proposal's
transform is `datetime` (convert, then keep the date), `date` for DateOnly columns.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD, CustomFieldTarget, FieldType, TransformName
from migration_pipeline.mapping.targets import TAKES_CUSTOM_FIELDS, TARGETS, TargetField, canonical_object, targets_for
from migration_pipeline.mapping.transforms import URL_PATTERN

Status = Literal["mapped", "needs_decision", "not_migrated"]
LOOKUP_TYPES = ("Lookup", "Customer", "Owner")
MAPPED_AT = 0.75  # a standard field this close (and type-compatible) is proposed outright
DECIDE_AT = 0.5  # between the two: a person decides; below: no standard field is similar

# The Pipedrive object each standard Dynamics table becomes (DESIGN.md, "Objects").
ENTITY_OBJECTS: dict[str, str] = {
    "account": "organization", "contact": "person", "opportunity": "deal", "lead": "lead", "product": "product",
    "activitypointer": "activity", "phonecall": "activity", "email": "activity", "task": "activity",
    "appointment": "activity", "annotation": "note", "opportunityproduct": "deal_product",
}


# --- models -------------------------------------------------------------------------------------


class SourceAttribute(BaseModel):
    """One Dataverse column as its metadata describes it (`EntityDefinitions(...)/Attributes`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity: str
    logical_name: str
    column: str = ""  # wire name in the raw data; lookups are `_<name>_value` (filled in when empty)
    attribute_type: str
    display_name: str = ""
    description: str = ""
    format: str | None = None  # Email, Url, Phone, Text, TextArea, TickerSymbol, DateOnly, DateAndTime
    max_length: int | None = None
    options: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    is_custom: bool = False
    is_primary_id: bool = False
    is_primary_name: bool = False

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Metadata leaves labels empty as null; the wire column follows from the type."""
        if isinstance(data, dict):
            data = {**data, **{key: "" for key in ("display_name", "description") if data.get(key) is None}}
            if not data.get("column"):
                lookup = data.get("attribute_type") in LOOKUP_TYPES
                data["column"] = f"_{data['logical_name']}_value" if lookup else data["logical_name"]
        return data


class FieldProposal(BaseModel):
    """Where one column goes: a standard field (`target`), a new custom field, or nowhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    target: str | None = None
    custom_field: CustomFieldTarget | None = None
    transform: TransformName = "copy"
    status: Status
    confidence: float = Field(ge=0, le=1)
    reason: str
    alternative: str | None = None  # the standard field a person may prefer to the default

    @model_validator(mode="after")
    def _destination_matches_status(self) -> FieldProposal:
        if self.target is not None and self.custom_field is not None:
            raise ValueError("a proposal has a standard target or a custom field, not both")
        has_destination = self.target is not None or self.custom_field is not None
        if self.status == "mapped" and not has_destination:
            raise ValueError("a mapped proposal needs a destination")
        if self.status == "not_migrated" and has_destination:
            raise ValueError("a not_migrated proposal has no destination")
        return self

    @property
    def outcome(self) -> str:
        """'website', 'custom:enum' or 'not_migrated': what confirming the proposal as is would do."""
        if self.target is not None:
            return self.target
        if self.custom_field is not None:
            return f"custom:{self.custom_field.field_type}"
        return "not_migrated"


@dataclass(frozen=True)
class OptionMapping:
    """Picklist labels paired with target labels; `unmapped` are the source labels with no partner."""

    pairs: dict[str, str]
    unmapped: list[str]


# --- normalisation ------------------------------------------------------------------------------

STOPWORDS = frozenset(
    "a an the of and or for in at to on is per de du des la le les l d del el los las y der die das und von vom "
    "van het een en voor".split()
)
# Low-information words: they count, but half as much as the words that say what a field is.
GENERIC = frozenset("name number date code type id value amount status time count main default total percent "
                    "primary other information business work new".split())
ABBREVIATIONS = {
    "num": "number", "no": "number", "nbr": "number", "nr": "number", "emp": "employee", "empl": "employee",
    "addr": "address", "tel": "phone", "ph": "phone", "phn": "phone", "telephone": "phone", "amt": "amount",
    "rev": "revenue", "dt": "date", "desc": "description", "qty": "quantity", "url": "website", "web": "website",
    "cnt": "count", "cust": "customer", "acct": "account", "ann": "annual", "est": "estimated", "exp": "expected",
    "prob": "probability", "mgr": "manager", "mob": "mobile", "cell": "mobile", "rsn": "reason", "src": "source",
    "pct": "percent", "ttl": "title", "dob": "birthday", "pref": "preferred", "ind": "industry", "alt": "alternate",
    "org": "organization", "co": "company", "yr": "year", "mail": "email",
}
TRANSLATIONS = {
    # German
    "webseite": "website", "internetseite": "website", "umsatz": "revenue", "jahres": "annual",
    "mitarbeiter": "employee", "anzahl": "number", "telefon": "phone", "nummer": "number", "mobil": "mobile", "handy": "mobile",
    "branche": "industry", "besitzer": "owner", "firmen": "company", "firma": "company", "unternehmen": "company",
    "vorname": "first name", "nachname": "last name", "vollstandiger": "full", "geburtstag": "birthday",
    "geburts": "birth", "datum": "date", "funktion": "function", "adresse": "address", "strasse": "street",
    "ort": "city", "stadt": "city", "postleitzahl": "postal code", "plz": "postal code", "land": "country",
    "thema": "topic", "betreff": "subject", "geschatzter": "estimated", "voraussichtliches": "expected",
    "abschluss": "close", "wahrscheinlichkeit": "probability", "verlust": "lost", "grund": "reason", "wert": "value",
    "betrag": "amount", "wahrung": "currency", "beschreibung": "description", "kunde": "customer",
    "kunden": "customer", "seit": "since", "geschaftlich": "business", "seite": "page", "abonnent": "subscriber",
    "basis": "base", "ust": "vat", "monate": "months", "einheit": "unit", "kategorie": "category",
    "artikel": "product", "preis": "price", "listen": "list", "mwst": "vat", "satz": "rate", "steuer": "tax",
    "auftrags": "order", "auftrag": "order", "bezeichnung": "name", "branchen": "industry", "kanton": "province",
    "direktwahl": "direct phone", "natel": "mobile", "privat": "personal", "entscheid": "decision",
    "entscheidungs": "decision", "ansprechpartner": "contact person", "einstandspreis": "cost price",
    "kosten": "cost",
    # French
    "nom": "name", "prenom": "first name", "complet": "full", "compte": "account", "effectif": "headcount",
    "secteur": "sector", "principal": "main", "professionnel": "business", "portable": "mobile", "courriel": "email",
    "ville": "city", "pays": "country", "proprietaire": "owner", "fonction": "function", "naissance": "birth",
    "sujet": "subject", "revenu": "revenue", "estime": "estimated", "cloture": "close", "prevue": "expected",
    "probabilite": "probability", "montant": "amount", "remise": "discount", "affaire": "deal", "raison": "reason",
    "perte": "lost", "devise": "currency", "responsable": "responsible", "consentement": "consent",
    "prochain": "next", "juridique": "legal", "categorie": "category", "unite": "unit", "prix": "price",
    "tva": "vat", "taux": "rate", "taxe": "tax", "cout": "cost", "canton": "province", "interlocuteur": "contact",
    # Spanish
    "nombre": "name", "completo": "full", "cuenta": "account", "numero": "number", "empleados": "employee",
    "ingresos": "revenue", "anuales": "annual", "anual": "annual", "telefono": "phone", "movil": "mobile",
    "direccion": "address", "ciudad": "city", "pais": "country", "puesto": "position", "cargo": "position",
    "apellidos": "last name", "apellido": "last name", "tema": "topic", "estimados": "estimated",
    "estimada": "estimated", "estimado": "estimated", "fecha": "date", "cierre": "close", "real": "actual",
    "motivo": "reason", "perdida": "lost", "importe": "amount", "contrato": "contract", "propietario": "owner",
    "segmento": "segment", "limite": "limit", "credito": "credit", "idioma": "language", "preferido": "preferred",
    "canales": "channels", "region": "region", "categoria": "category", "unidad": "unit", "precio": "price",
    "iva": "vat", "tasa": "rate", "impuesto": "tax", "articulo": "product", "coste": "cost", "costo": "cost",
    # Dutch
    "naam": "name", "volledige": "full", "aantal": "number", "medewerkers": "employee", "werknemers": "employee",
    "omzet": "revenue", "jaar": "annual", "telefoon": "phone", "hoofd": "main", "werk": "work", "mobiele": "mobile",
    "mobiel": "mobile", "functie": "function", "verjaardag": "birthday", "geboorte": "birth", "eigenaar": "owner",
    "adres": "address", "straat": "street", "plaats": "city", "catalogus": "list", "prijs": "price",
    "eenheid": "unit", "btw": "vat", "tarief": "rate", "voorraad": "stock", "klant": "customer", "sinds": "since",
    "opmerkingen": "comments", "onderwerp": "subject", "bedrag": "amount", "waarde": "value", "kans": "probability",
    "verwachte": "expected", "niveau": "level", "kostprijs": "cost price",
}
# Multi-word expressions, replaced before and after word-by-word translation.
PHRASES = {
    "chiffre d affaires": "revenue", "site web": "website", "sitio web": "website", "web site": "website",
    "home page": "website", "correo electronico": "email", "e mail": "email", "secteur d activite": "industry",
    "line of business": "industry", "email address": "email", "email adres": "email", "email adresse": "email",
}
# English words that appear glued together in Dataverse logical names (`numberofemployees`).
ENGLISH = (
    "account accounts actual activity address all allow amount annual anniversary attendees base birth bulk budget "
    "business by calls campaign category children city close code company complete composite contact cost count "
    "country credit currency current customer date day decimal decimals default description direction do due "
    "duration email employees employee end estimated event exchange expected family fax first frame from full gender "
    "hand home id import industry instance is job last lead level limit line list location manager method middle "
    "minutes mobile name need not number object of on opportunity or originating overridden owner owning ownership "
    "parent payment percent phone postal preferred price priority probability process product province purchase "
    "quality qualifying quantity rate rating recipients regarding regular relationship renewal revenue role rule "
    "sales schedule scheduled sequence situation source spouses spouse stage standard start state status step "
    "structure subject supported symbol telephone terms ticker tier time timeframe title to total transaction type "
    "unit uom url utc valid value vendor version website zone zip linkedin tags notes active contract group"
).split()


def _fold(text: str) -> str:
    """Lower case without accents; `%`, `#` and `N°` become words so 'Tax %' reads 'tax percent'."""
    text = re.sub(r"[Nn][°º]", " number ", text).replace("%", " percent ").replace("#", " number ")
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)  # camelCase
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ß", "ss").lower()


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    words = set(ENGLISH) | set(TRANSLATIONS) | set(ABBREVIATIONS) | STOPWORDS
    for fields in TARGETS.values():
        for field in fields:
            for phrase in (field.name.replace("_", " "), *field.synonyms):
                words.update(_fold(phrase).split())
    return frozenset(w for w in words if len(w) >= 2)


def _segment(token: str) -> list[str]:
    """Split a glued word ('numberofemployees') into known words; unknown words stay whole."""
    vocabulary = _vocabulary()
    if token in vocabulary or len(token) < 5:
        return [token]
    best: list[list[str] | None] = [[]] + [None] * len(token)
    for end in range(1, len(token) + 1):
        for start in range(max(0, end - 20), end):
            piece, head = token[start:end], best[start]
            if head is not None and piece in vocabulary and (best[end] is None or len(head) + 1 < len(best[end])):
                best[end] = head + [piece]
    return best[-1] or [token]


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


def tokens(text: str) -> frozenset[str]:
    """The meaning-bearing words of a name, label or synonym, in English, singular, without noise."""
    raw = _merge_phrases(piece for word in re.findall(r"[a-z]+", _fold(text)) for piece in _segment(word))
    words = _merge_phrases(TRANSLATIONS.get(w, ABBREVIATIONS.get(w, w)) for w in raw)
    return frozenset(_stem(w) for w in words if w not in STOPWORDS)


def _merge_phrases(words: Iterable[str]) -> list[str]:
    text = f" {' '.join(words)} "
    for phrase, replacement in PHRASES.items():
        text = text.replace(f" {phrase} ", f" {replacement} ")
    return text.split()


def strip_prefix(logical_name: str, is_custom: bool) -> str:
    """'cr7f2_customertier' -> 'customertier': a custom column's publisher prefix says nothing."""
    if is_custom or logical_name.startswith("new_"):
        head, _, rest = logical_name.partition("_")
        if rest and 2 <= len(head) <= 8:
            return rest
    return logical_name


def normalise_label(label: str) -> str:
    """For option labels: case, accents and punctuation folded away ('Out-Sold' == 'out sold')."""
    return " ".join(re.findall(r"[a-z0-9]+", _fold(label)))


# --- name matching ------------------------------------------------------------------------------


def _weight(words: Iterable[str]) -> float:
    return sum(0.5 if w in GENERIC else 1.0 for w in words)


def match_score(source: frozenset[str], phrases: Sequence[frozenset[str]]) -> float:
    """How well a source phrase names a target known by several phrases, 0..1 (weighted F-measure).

    Precision is measured against all the target's words together (an address part such as
    'Address 1: City' is fully explained by the address field's phrases), recall against its
    best single phrase (every word of that phrase must be present to score 1).
    """
    phrases = [p for p in phrases if p]
    if not source or not phrases:
        return 0.0
    if source in phrases:
        return 1.0
    union = frozenset().union(*phrases)
    precision = _weight(source & union) / _weight(source)
    recall = max(_weight(source & p) / _weight(p) for p in phrases)
    return 0.0 if precision == 0 or recall == 0 else 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=None)
def _target_phrases(field: TargetField) -> tuple[frozenset[str], ...]:
    return tuple(tokens(p) for p in (field.name.replace("_id", "").replace("_", " "), *field.synonyms))


def _source_phrases(attribute: SourceAttribute) -> list[tuple[str, frozenset[str], float]]:
    """(evidence, words, weight): standard logical names are stable English, labels are
    translated by the org; for custom columns the label is usually the clearer of the two."""
    label_weight, name_weight = (1.0, 0.95) if attribute.is_custom else (0.95, 1.0)
    phrases = [(f"name '{attribute.logical_name}'", tokens(strip_prefix(attribute.logical_name, attribute.is_custom)),
                name_weight)]
    if attribute.display_name:
        phrases.append((f"display label '{attribute.display_name}'", tokens(attribute.display_name), label_weight))
    description = tokens(attribute.description)
    if 0 < len(description) <= 6:
        phrases.append((f"description '{attribute.description}'", description, 0.8))
    return phrases


@dataclass(frozen=True)
class Candidate:
    field: TargetField
    score: float
    evidence: str
    compatible: bool


# --- values and types ---------------------------------------------------------------------------

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
PHONE = re.compile(r"^\+?[\d\s().\-/]{7,24}$")
DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?|\d{1,2}[./]\d{1,2}[./]\d{2,4})$")
NUMBER = re.compile(r"^-?\d+([.,]\d+)?$")
MONEY = re.compile(r"^([A-Z]{3}|[$€£¥])\s?-?[\d.,' ]+\d$|^-?[\d.,' ]*\d\s?([A-Z]{3}|[$€£¥])$")
SAMPLE_KINDS = (("email", EMAIL), ("url", URL_PATTERN), ("date", DATE), ("decimal", NUMBER), ("money", MONEY),
                ("phone", PHONE))


@dataclass(frozen=True)
class SampleProfile:
    """What the values of a text column look like: a kind, or the options of an enum or a set."""

    kind: str | None = None  # email, url, date, decimal, money, phone, option (enum), multi_option (set)
    share: float = 0.0
    options: tuple[str, ...] = ()


def profile_sample(sample: pd.Series | None) -> SampleProfile:
    """Kinds need 80% of the non-empty values; an enum needs few distinct short values, a set
    needs `;` or `|` in at least a fifth of them."""
    if sample is None:
        return SampleProfile()
    values = [str(v).strip() for v in sample.dropna() if str(v).strip()]
    if len(values) < 3:
        return SampleProfile()
    for kind, pattern in SAMPLE_KINDS:
        share = sum(bool(pattern.match(v)) for v in values) / len(values)
        if share >= 0.8 and (kind != "phone" or all(sum(c.isdigit() for c in v) >= 7 for v in values)):
            return SampleProfile(kind, share)
    delimited = [v for v in values if ";" in v or "|" in v]
    if len(delimited) >= 0.2 * len(values):
        items = [item.strip() for v in values for item in re.split(r"[;|]", v) if item.strip()]
        distinct = _by_frequency(items)
        if len(distinct) <= 50 and all(len(item) <= 60 for item in distinct):
            return SampleProfile("multi_option", len(delimited) / len(values), tuple(distinct))
    distinct = _by_frequency(values)
    if len(values) >= 10 and len(distinct) <= min(20, len(values) // 3) and all(len(v) <= 50 for v in distinct):
        return SampleProfile("option", 1.0, tuple(distinct))
    return SampleProfile()


def _by_frequency(values: list[str]) -> list[str]:
    counts = pd.Series(values).value_counts()
    return sorted(counts.index, key=lambda v: (-counts[v], v))


REFERENCE_TYPES = {"account": "org", "contact": "people", "systemuser": "user", "team": "user", "opportunity": "deal",
                   "lead": "lead", "product": "product", "transactioncurrency": "currency", "processstage": "stage",
                   "workflow": "pipeline"}
# Which Pipedrive field types can hold a value of each source kind.
COMPATIBLE: dict[str, frozenset[str]] = {k: frozenset(v.split()) for k, v in {
    "text": "varchar text address", "memo": "text varchar address", "email": "email attendees", "phone": "phone",
    "integer": "integer double monetary duration", "decimal": "double integer monetary", "money": "monetary integer double prices", "boolean": "boolean enum",
    "date": "date datetime", "datetime": "datetime date time", "option": "enum status varchar activity_type boolean",
    "state": "status boolean enum", "status_reason": "enum varchar", "multi_option": "set labels",
    "entity_name": "activity_type", "party": "people attendees",
}.items()}


def source_kind(attribute: SourceAttribute, profile: SampleProfile) -> str:
    """The kind of value a column holds, from its type and format, refined by sample values."""
    kind = attribute.attribute_type
    if kind in ("String", "Memo"):
        by_format = {"Email": "email", "Phone": "phone", "Url": "url"}.get(attribute.format or "")
        return by_format or profile.kind or ("memo" if kind == "Memo" else "text")
    if kind == "DateTime":
        return "date" if attribute.format == "DateOnly" else "datetime"
    return {"Integer": "integer", "BigInt": "integer", "Decimal": "decimal", "Double": "decimal", "Money": "money",
            "Boolean": "boolean", "Picklist": "option", "State": "state", "Status": "status_reason",
            "MultiSelectPicklist": "multi_option", "EntityName": "entity_name", "PartyList": "party",
            "Uniqueidentifier": "id"}.get(kind, "lookup" if kind in LOOKUP_TYPES else "other")


def _reference_types(attribute: SourceAttribute) -> set[str]:
    types = {REFERENCE_TYPES.get(t, "varchar") for t in attribute.targets}
    if attribute.attribute_type == "Owner":
        types.add("user")
    if "currency" in types:  # the currency of an amount travels with it (deal currency, product prices, lead value)
        types.update({"prices", "monetary"})
    return types


def compatible(attribute: SourceAttribute, kind: str, field: TargetField) -> bool:
    if kind == "lookup":
        return field.field_type in _reference_types(attribute)
    if kind == "url":  # a URL fits only the fields that hold links (website, linkedin)
        return field.transform == "url"
    return field.field_type in COMPATIBLE.get(kind, frozenset())


def describe_type(attribute: SourceAttribute) -> str:
    return attribute.attribute_type + (f"/{attribute.format}" if attribute.format else "")


# --- custom fields ------------------------------------------------------------------------------

CUSTOM_TYPES: dict[str, FieldType] = {
    "text": "varchar", "memo": "text", "email": "varchar", "phone": "phone", "url": "varchar", "integer": "double",
    "decimal": "double", "money": "monetary", "boolean": "enum", "date": "date", "datetime": "date",
    "option": "enum", "state": "enum", "status_reason": "enum", "multi_option": "set",
}
ADDRESS_PART = re.compile(r"^address(\d)_(line\d|city|stateorprovince|postalcode|country|county)$")


def infer_custom_field(attribute: SourceAttribute, kind: str, profile: SampleProfile) -> CustomFieldTarget:
    """A new custom field for the column: named after its label, typed from its kind."""
    name = (attribute.display_name or attribute.logical_name).strip()[:255]
    address = ADDRESS_PART.match(attribute.logical_name)
    if address:  # the parts of one Dynamics address share one Pipedrive address field
        return CustomFieldTarget(name=name.split(":")[0].strip() or f"Address {address.group(1)}", field_type="address")
    if kind == "lookup":
        reference = {"org", "people", "user"} & _reference_types(attribute)
        field_type: FieldType = sorted(reference)[0] if len(reference) == 1 else "varchar"  # type: ignore[assignment]
        return CustomFieldTarget(name=name, field_type=field_type)
    field_type = CUSTOM_TYPES.get(kind, "varchar")
    if field_type == "varchar" and (attribute.max_length or 0) > 255:
        field_type = "text"
    options = list(profile.options) if kind in ("option", "multi_option") and profile.options else list(attribute.options)
    if kind == "boolean" and not options:
        options = ["Yes", "No"]
    if field_type in ("enum", "set") and not options:
        return CustomFieldTarget(name=name, field_type="varchar")  # no option labels known: keep the raw value
    return CustomFieldTarget(name=name, field_type=field_type, options=options if field_type in ("enum", "set") else None)


TRANSFORMS: dict[str, TransformName] = {
    "text": "text", "memo": "text", "email": "text", "phone": "text", "url": "url", "integer": "integer",
    "money": "money", "date": "date", "datetime": "datetime", "boolean": "option_label", "option": "option_label",
    "state": "option_label", "status_reason": "option_label", "multi_option": "option_label",
}


def choose_transform(kind: str, field_type: str, preset: TransformName | None = None) -> TransformName:
    """The target's own transform if it has one; users go through the owner map; else by source kind.
    Lookups to records (org, people, ...) are `copy`: the loader resolves ids through the ID maps."""
    special: dict[str, TransformName] = {"user": "owner", "address": "address"}
    if kind == "lookup" and field_type in ("varchar", "text"):
        return "lookup_label"  # a record that does not migrate: keep its name, not its GUID
    return preset or special.get(field_type) or TRANSFORMS.get(kind, "copy")


# --- rules that need no matching ----------------------------------------------------------------

SYSTEM_COLUMNS = {name: reason for reason, names in {
    "row version for change tracking; Pipedrive keeps its own": "versionnumber",
    "Pipedrive sets update_time itself; the delta sensor reads this as its watermark": "modifiedon",
    "Dynamics audit column; Pipedrive records its own": "createdby modifiedby createdonbehalfby modifiedonbehalfby",
    "bookkeeping of a past Dynamics data import": "importsequencenumber",
    "set by past data imports only; the creation date travels in createdon": "overriddencreatedon",
    "time-zone bookkeeping of Dynamics date fields": "timezoneruleversionnumber utcconversiontimezonecode",
    "Dynamics security scaffolding; the owner travels in ownerid": "owningbusinessunit owninguser owningteam",
    "business process flow bookkeeping": "traversedpath",
    "the current process stage's name; the stage travels through the stage map": "stepname",
    "Pipedrive amounts carry their own currency": "exchangerate",
    "record image (binary)": "entityimage entityimageid entityimage_url entityimage_timestamp",
}.items() for name in names.split()}


def _rule(attribute: SourceAttribute, obj: str) -> str | None:
    """The reason a column is not migrated whatever its name matches, or None."""
    name, kind = attribute.logical_name, attribute.attribute_type
    if name in SYSTEM_COLUMNS:
        return SYSTEM_COLUMNS[name]
    if name.endswith("_composite"):
        return "computed by Dynamics from the address parts, which are mapped one by one"
    if name.startswith("yomi"):
        return "phonetic (Yomi) spelling of another column"
    if kind == "Money" and name.endswith("_base"):
        return f"base-currency twin of {name[:-5]}; Pipedrive keeps amounts in their own currency"
    if kind == "Uniqueidentifier":
        return "a bare Dynamics id with no meaning in Pipedrive"
    if source_kind(attribute, SampleProfile()) == "other":
        return f"a {kind} column (virtual, image or file) has no value of its own to carry"
    if kind == "EntityName":
        return None if obj == "activity" else "the type half of a polymorphic lookup, carried with the lookup"
    if obj == "organization" and kind == "Lookup" and attribute.targets == ("account",) and "parent" in name:
        return "becomes a parent organization relationship (loaded after organizations), not a field"
    if obj == "lead" and kind == "State":
        return "decides routing: open leads become Pipedrive leads, qualified ones their deal"
    if obj == "lead" and kind == "Lookup" and attribute.targets == ("opportunity",):
        return "a qualified lead is loaded as this deal, not as a lead"
    if obj == "deal_product" and kind == "Lookup" and attribute.targets == ("opportunity",):
        return "the parent deal: part of the request path (POST /deals/{id}/products), not a field"
    return None


# --- proposing ----------------------------------------------------------------------------------


def candidates(attribute: SourceAttribute, obj: str, kind: str, profile: SampleProfile) -> list[Candidate]:
    """Every standard field of the object, scored by name (and by lookup target for lookups), best first."""
    phrases = _source_phrases(attribute)
    covered = _covering_fields(attribute, obj) if kind == "lookup" else ()
    out = []
    for field in targets_for(obj):
        score, evidence = 0.0, ""
        for what, words, weight in phrases:
            value = match_score(words, _target_phrases(field)) * weight
            if value > score:
                score, evidence = value, what
        if attribute.is_primary_name and field.name in ("name", "title", "subject") and score < 0.9:
            score, evidence = 0.9, "primary name column"
        if attribute.attribute_type == "Owner" and field.field_type == "user" and field.transform == "owner":
            score, evidence = 1.0, "Owner column (the record's owner)"
        elif field in covered and score < 0.8:
            # A lookup to several record types, each with its own link field, is the record's link
            # ('Regarding'); a single-type lookup with an unrelated name may be another relation.
            strength = 0.8 - 0.01 * covered.index(field) if len(covered) > 1 else DECIDE_AT + 0.1
            if strength > score:
                score, evidence = strength, f"lookup to {'/'.join(attribute.targets)}"
        if kind in ("email", "phone") and kind == field.field_type and field.accepts_many and score < 0.8:
            # a person keeps all its emails and phones (DESIGN): any email or phone column belongs there
            score, evidence = 0.8, f"{kind} {'values' if profile.kind == kind else 'format'}"
        out.append(Candidate(field, round(min(score, 1.0), 3), evidence, compatible(attribute, kind, field)))
    return sorted(out, key=lambda c: (-c.score, not c.compatible))


_REFERENCE_ORDER = ("deal", "lead", "people", "org", "user", "pipeline", "stage", "currency", "product")


def _covering_fields(attribute: SourceAttribute, obj: str) -> tuple[TargetField, ...]:
    """The object's reference fields that receive a lookup's records; empty unless every target
    entity has one (a 'Regarding' lookup to account/contact/opportunity/lead on an activity)."""
    fields = [f for f in targets_for(obj) if f.field_type in REFERENCE_TYPES.values() and not f.accepts_many]
    receiving = {t: next((f for f in fields if f.field_type == REFERENCE_TYPES.get(t)), None) for t in attribute.targets}
    if attribute.attribute_type == "Owner":
        receiving = {"owner": next((f for f in fields if f.field_type == "user"), None)}
    if not receiving or any(f is None for f in receiving.values()):
        return ()
    unique = {f.name: f for f in receiving.values() if f is not None}.values()
    return tuple(sorted(unique, key=lambda f: _REFERENCE_ORDER.index(f.field_type)))


def propose_field(
    attribute: SourceAttribute,
    object_name: str,
    sample: pd.Series | None = None,
    existing_custom_fields: Sequence[CustomFieldTarget] = (),
) -> FieldProposal:
    """One column -> one proposal, judged on its own (`propose_object` also weighs the columns
    against each other). `existing_custom_fields` (already in Pipedrive, or already planned) are
    reused when one has the inferred field's name and type.

    The primary id's proposal names the "Dynamics ID" field: it is the map's `source_key`, which
    `ObjectMap.custom_fields` always adds, so it is not a field entry of its own.
    """
    obj = canonical_object(object_name)
    profile = _profile(attribute, sample)
    kind = source_kind(attribute, profile)
    source = attribute.column
    if attribute.is_primary_id:
        if obj not in TAKES_CUSTOM_FIELDS:
            return _skip(source, f"the record's Dynamics id; Pipedrive {obj} records take no custom fields, the journal keeps it")
        return FieldProposal(source=source, custom_field=CustomFieldTarget(name=DYNAMICS_ID_FIELD, field_type="varchar"),
                             transform="copy", status="mapped", confidence=1.0,
                             reason="the record's Dynamics id: the map's source_key, kept in the 'Dynamics ID' field")
    rule = _rule(attribute, obj)
    if rule:
        return _skip(source, rule)
    ranked = candidates(attribute, obj, kind, profile)
    best = ranked[0] if ranked and ranked[0].score > 0 else None
    fitting = next((c for c in ranked if c.compatible and c.score >= (MAPPED_AT if c.field.read_only else DECIDE_AT)), None)
    looks = {"option": "a few repeated values", "multi_option": "delimited lists"}.get(profile.kind or "", f"{profile.kind}s")
    values = f"; values look like {looks} ({profile.share:.0%})" if profile.kind else ""
    if fitting and fitting.score >= MAPPED_AT:
        return _to_standard(attribute, obj, kind, fitting, values)
    custom = _custom_or_existing(attribute, kind, profile, existing_custom_fields)
    if fitting:
        why = f"{fitting.evidence} resembles {obj}.{fitting.field.name} ({fitting.score:.2f}) but not clearly"
        return _to_custom(source, obj, custom, kind, "needs_decision", fitting.score, why + values, fitting.field.name,
                          existing_custom_fields)
    if best and best.score >= MAPPED_AT:
        why = (f"{best.evidence} matches {obj}.{best.field.name}, but {describe_type(attribute)} "
               f"does not fit its type {best.field.field_type}")
        return _to_custom(source, obj, custom, kind, "needs_decision", best.score * 0.8, why + values, best.field.name,
                          existing_custom_fields)
    closest = f" (closest: {best.field.name} {best.score:.2f})" if best else ""
    why = f"no standard {obj} field fits{closest}"
    confidence = 0.9 - 0.4 * (best.score if best else 0)
    return _to_custom(source, obj, custom, kind, "mapped", confidence, why + values, None, existing_custom_fields)


def _profile(attribute: SourceAttribute, sample: pd.Series | None) -> SampleProfile:
    """Only text columns are profiled: the type of any other column already says what it holds."""
    return profile_sample(sample) if attribute.attribute_type in ("String", "Memo") else SampleProfile()


def _skip(source: str, reason: str) -> FieldProposal:
    return FieldProposal(source=source, status="not_migrated", confidence=0.95, reason=reason)


def _to_standard(attribute: SourceAttribute, obj: str, kind: str, candidate: Candidate, values: str) -> FieldProposal:
    field = candidate.field
    if field.read_only:
        return _skip(attribute.column, f"{candidate.evidence} matches {obj}.{field.name}, which Pipedrive derives "
                                       "from name; the full name carries it")
    reason = f"{candidate.evidence} matches {obj}.{field.name}; {describe_type(attribute)}{values}"
    if kind == "lookup" and len(_covering_fields(attribute, obj)) > 1:
        reason += f"; each row goes to the field of its record's type ({'/'.join(attribute.targets)})"
    return FieldProposal(source=attribute.column, target=field.name, status="mapped", confidence=candidate.score,
                         transform=choose_transform(kind, field.field_type, field.transform), reason=reason)


def _to_custom(source: str, obj: str, custom: CustomFieldTarget, kind: str, status: Status, confidence: float,
               why: str, alternative: str | None, existing: Sequence[CustomFieldTarget] = ()) -> FieldProposal:
    if obj not in TAKES_CUSTOM_FIELDS:
        status = "needs_decision" if status == "needs_decision" and alternative else "not_migrated"
        return FieldProposal(source=source, status=status, confidence=round(confidence, 3), alternative=alternative,
                             reason=f"{why}; Pipedrive {obj} records take no custom fields, so by default not migrated")
    lost_time = "; the time of day is not kept" if kind == "datetime" else ""
    default = "default: " if status == "needs_decision" else ""
    age = "existing" if custom in existing else "new"
    reason = f"{why}; {default}{age} {custom.field_type} custom field '{custom.name}'{lost_time}"
    return FieldProposal(source=source, custom_field=custom, status=status, confidence=round(confidence, 3),
                         transform=choose_transform(kind, custom.field_type), reason=reason, alternative=alternative)


def _custom_or_existing(attribute: SourceAttribute, kind: str, profile: SampleProfile,
                        existing: Sequence[CustomFieldTarget]) -> CustomFieldTarget:
    """The inferred custom field, or an existing one of the same name and type (provisioning reuses it)."""
    inferred = infer_custom_field(attribute, kind, profile)
    for field in existing:
        if normalise_label(field.name) == normalise_label(inferred.name) and field.field_type == inferred.field_type:
            return field
    return inferred


def propose_object(
    attributes: Sequence[SourceAttribute],
    object_name: str,
    samples: Mapping[str, pd.Series] | None = None,
    existing_custom_fields: Sequence[CustomFieldTarget] = (),
) -> list[FieldProposal]:
    """Every column of one entity -> one proposal each, in order, consistent with each other.

    Beyond `propose_field`: a standard field only one column can fill goes to the best column
    (the others need a decision); a Status column that only repeats the State is dropped;
    money consolidated into a currency-less field (organization annual revenue) takes the
    base-currency twin, keeping the original amount and exchange rate in custom fields; custom
    field names are made unique.
    """
    obj = canonical_object(object_name)
    samples = {} if samples is None else samples
    proposals = [propose_field(a, obj, samples.get(a.column), existing_custom_fields) for a in attributes]
    proposals = _consolidate_currency(attributes, proposals, obj)
    proposals = _drop_repeated_status(attributes, proposals)
    proposals = _settle_conflicts(attributes, proposals, obj, samples, existing_custom_fields)
    return _unique_names(attributes, proposals)


def _settle_conflicts(attributes: Sequence[SourceAttribute], proposals: list[FieldProposal], obj: str,
                      samples: Mapping[str, pd.Series], existing: Sequence[CustomFieldTarget]) -> list[FieldProposal]:
    """A single-valued standard field goes to its best column: highest confidence, then a
    standard column over a custom one, a single-target lookup over a polymorphic one, the first."""
    fields = {f.name: f for f in targets_for(obj)}
    out = list(proposals)
    claims: dict[str, list[int]] = {}
    for i, p in enumerate(proposals):
        if p.target is not None and not fields[p.target].accepts_many:
            claims.setdefault(p.target, []).append(i)
    for target, indexes in claims.items():
        if len(indexes) < 2:
            continue
        ranked = sorted(indexes, key=lambda i: (-proposals[i].confidence, attributes[i].is_custom,
                                                len(attributes[i].targets) > 1, i))
        winner = attributes[ranked[0]].logical_name
        for i in ranked[1:]:
            attribute, why = attributes[i], f"also fits {obj}.{target}, which {winner} fills ({proposals[i].reason})"
            profile = _profile(attribute, samples.get(attribute.column))
            kind = source_kind(attribute, profile)
            custom = _custom_or_existing(attribute, kind, profile, existing)
            out[i] = _to_custom(attribute.column, obj, custom, kind, "needs_decision", proposals[i].confidence * 0.8,
                                why, target, existing)
    return out


def _drop_repeated_status(attributes: Sequence[SourceAttribute], proposals: list[FieldProposal]) -> list[FieldProposal]:
    """A Status Reason whose options are exactly the State's options adds nothing."""
    states = [a for a in attributes if a.attribute_type == "State"]
    if not states:
        return proposals
    state_labels = {normalise_label(o) for o in states[0].options}
    out = list(proposals)
    for i, attribute in enumerate(attributes):
        if attribute.attribute_type == "Status" and {normalise_label(o) for o in attribute.options} == state_labels:
            out[i] = _skip(attribute.column, f"its options repeat {states[0].logical_name}'s, which is carried")
    return out


def _consolidate_currency(attributes: Sequence[SourceAttribute], proposals: list[FieldProposal],
                          obj: str) -> list[FieldProposal]:
    """Money mapped to a standard field without a currency (organization annual_revenue) takes
    the base-currency twin, so every record is in one currency; the original amount, and the
    exchange rate, are kept in custom fields (DESIGN: multi-currency revenue consolidated)."""
    fields = {f.name: f for f in targets_for(obj)}
    index = {a.logical_name: i for i, a in enumerate(attributes)}
    out = list(proposals)
    consolidated = False
    for i, (attribute, proposal) in enumerate(zip(attributes, proposals)):
        twin = index.get(f"{attribute.logical_name}_base")
        if attribute.attribute_type != "Money" or proposal.target is None or twin is None:
            continue
        if fields[proposal.target].transform != "money" or fields[proposal.target].field_type in ("monetary", "prices"):
            continue
        consolidated = True
        out[twin] = proposal.model_copy(update={
            "source": attributes[twin].column,
            "reason": f"base-currency twin of {attribute.logical_name} (consolidated: {obj}.{proposal.target} "
                      f"has no currency); {proposal.reason}"})
        why = f"original-currency amount; {obj}.{proposal.target} takes {attributes[twin].logical_name}"
        custom = infer_custom_field(attribute, "money", SampleProfile())
        out[i] = _to_custom(attribute.column, obj, custom, "money", "mapped", 0.85, why, None)
    if consolidated and "exchangerate" in index:
        rate = attributes[index["exchangerate"]]
        custom = CustomFieldTarget(name=rate.display_name or "Exchange Rate", field_type="double")
        out[index["exchangerate"]] = _to_custom(rate.column, obj, custom, "decimal", "mapped", 0.85,
                                                "kept beside the consolidated amounts", None)
    return out


def _unique_names(attributes: Sequence[SourceAttribute], proposals: list[FieldProposal]) -> list[FieldProposal]:
    """Two new custom fields may not share a name (address parts share theirs on purpose)."""
    seen: set[str] = {normalise_label(DYNAMICS_ID_FIELD)}
    out = []
    for attribute, proposal in zip(attributes, proposals):
        field = proposal.custom_field
        if field is None or (field.name == DYNAMICS_ID_FIELD and attribute.is_primary_id) or field.field_type == "address":
            out.append(proposal)
            continue
        key = normalise_label(field.name)
        if key in seen:
            field = field.model_copy(update={"name": f"{field.name} ({attribute.logical_name})"})
            proposal = proposal.model_copy(update={"custom_field": field})
        seen.add(normalise_label(field.name))
        out.append(proposal)
    return out


def map_options(source_labels: Iterable[str], target_labels: Iterable[str]) -> OptionMapping:
    """Pair picklist labels with the target's by normalised label; report the ones left over."""
    index = {normalise_label(label): label for label in target_labels}
    labels = list(source_labels)
    pairs = {label: index[normalise_label(label)] for label in labels if normalise_label(label) in index}
    return OptionMapping(pairs, [label for label in labels if label not in pairs])
