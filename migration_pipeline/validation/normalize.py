"""Per-field normalisation: the one form both sides of a field take before they are compared.

What the loader sends and what Pipedrive returns for the same value often differ in form only:
an email's case, a phone's punctuation, `100` against `100.0`, `2024-05-01T10:00:00Z` (v2)
against `2024-05-01 10:00:00` (v1, UTC), an option's id as `24` (v2) or `"24"` (v1), a linked
record as `5` or as `{"value": 5, "name": ...}` (v1). Each field has a `Norm` that maps both
forms to one; the diff then compares the normalised values, and reports them too, so a
difference reads as labels and plain values, not as option ids.

A `Norm` returns None for "no value" (None, NaN, blank text, an empty list), so an empty field
on one side matches a missing one on the other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from migration_pipeline.mapping.payload import PayloadFields


@dataclass(frozen=True)
class Norm:
    """A named normaliser; the name goes into `validation.field_diff.rule` beside each difference."""

    name: str
    apply: Callable[[Any], Any]

    def __call__(self, value: Any) -> Any:
        return self.apply(value)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def plain(value: Any) -> Any:
    """Any value, with no field-specific knowledge: trimmed strings, whole floats as ints, empty parts dropped."""
    if _empty(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 6)
    if isinstance(value, Mapping):
        items = {key: plain(item) for key, item in value.items()}
        return {key: item for key, item in items.items() if item is not None} or None
    if isinstance(value, (list, tuple)):
        items = [plain(item) for item in value]
        return [item for item in items if item is not None] or None
    return value


def text(value: Any) -> Any:
    """Strings trimmed (inner spaces kept: they are part of the value)."""
    return plain(value)


def email(value: Any) -> Any:
    """Trimmed and lower-cased: mail systems treat addresses case-insensitively, Pipedrive may store either."""
    value = plain(value)
    return value.lower() if isinstance(value, str) else value


def phone(value: Any) -> Any:
    """The digits, with a leading + kept; text with no digit at all ("call reception") compares as text."""
    value = plain(value)
    if not isinstance(value, str):
        return value
    digits = re.sub(r"\D", "", value)
    if not digits:
        return value
    return ("+" if value.startswith("+") else "") + digits


def _number(value: Any) -> float | None:
    if _empty(value) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def number(value: Any) -> Any:
    """A number (or a numeric string) as an int when whole, else rounded to 6 places; anything else as text."""
    parsed = _number(value)
    if parsed is None:
        return plain(value)
    return int(parsed) if parsed.is_integer() else round(parsed, 6)


def money(value: Any) -> Any:
    """An amount to 2 decimals; an amount object (`{value|amount, currency}`) amount and currency both compared."""
    if isinstance(value, Mapping):
        amount = value.get("amount", value.get("value"))
        currency = plain(value.get("currency"))
        out = {"amount": money(amount), "currency": currency.upper() if isinstance(currency, str) else currency}
        return {key: item for key, item in out.items() if item is not None} or None
    parsed = _number(value)
    if parsed is None:
        return plain(value)
    rounded = round(parsed + 0.0, 2)
    return int(rounded) if rounded.is_integer() else rounded


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def _parse_datetime(value: str) -> datetime | None:
    if not _DATETIME.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError:
        return None
    # Pipedrive's v1 times carry no zone and are UTC; a naive time from the plan is UTC too (the transform's rule).
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def datetime_utc(value: Any) -> Any:
    """A moment as `YYYY-MM-DDTHH:MM:SSZ` in UTC, to the second, whichever of Pipedrive's forms it came in."""
    if isinstance(value, datetime):
        value = value.isoformat()
    value = plain(value)
    if not isinstance(value, str):
        return value
    parsed = _parse_datetime(value)
    return parsed.replace(microsecond=0, tzinfo=None).isoformat() + "Z" if parsed is not None else value


def day(value: Any) -> Any:
    """A calendar date as `YYYY-MM-DD`; a full moment is taken as its UTC date."""
    if isinstance(value, (datetime, date)):
        value = value.isoformat()
    value = plain(value)
    if not isinstance(value, str):
        return value
    parsed = _parse_datetime(value)
    if parsed is not None:
        return parsed.date().isoformat()
    return value[:10] if re.match(r"^\d{4}-\d{2}-\d{2}$", value[:10]) else value


def clock(value: Any) -> Any:
    """A time of day or a duration as `HH:MM` (`07:35:00` is `07:35`)."""
    value = plain(value)
    if isinstance(value, str) and re.match(r"^\d{1,2}:\d{2}(:00)?$", value):
        hours, minutes = value.split(":")[:2]
        return f"{int(hours):02d}:{minutes}"
    return value


def boolean(value: Any) -> Any:
    """True or False, from a bool, 0/1 or "true"/"false" (v1 renders some flags as strings)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return plain(value)


def link(value: Any) -> Any:
    """A linked record's id as text: `5`, `5.0`, `"5"` and v1's `{"value": 5, "name": ...}` are all `"5"`."""
    if isinstance(value, Mapping):
        value = value.get("value", value.get("id"))
    value = plain(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return str(int(value))
    return str(value).lower() if isinstance(value, str) else value


def links(value: Any) -> Any:
    """A list of linked ids, in no particular order."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = sorted(item for item in (link(item) for item in items) if item is not None)
    return out or None


def options(labels: Mapping[str, Any], name: str = "option") -> Norm:
    """Option ids (v2 ints, v1 strings, a set as a list or v1's "1,2") as their labels, so reports show labels.

    `labels` is label -> id (`PayloadFields.options`). An id the field does not know stays as `#<id>`.
    A single option compares as one label, a set as the sorted list of its labels.
    """
    by_id = {link(option_id): label for label, option_id in labels.items()}

    def label(item: Any) -> Any:
        key = link(item)
        if key is None:
            return None
        if key in by_id:
            return by_id[key]
        return f"#{key}" if key.isdigit() or len(key) == 36 else key

    def apply(value: Any) -> Any:
        if isinstance(value, str) and "," in value and all(part.strip().isdigit() for part in value.split(",")):
            value = value.split(",")  # v1 renders a set as "1,2"
        if isinstance(value, (list, tuple)):
            out = sorted({item for item in (label(item) for item in value) if item is not None})
            return out or None
        return label(value)

    return Norm(name, apply)


def each(item: Norm) -> Norm:
    """A list whose items each take `item` (compared as a multiset: order is not part of the value)."""

    def apply(value: Any) -> Any:
        if _empty(value):
            return None
        items = [item(entry) for entry in (value if isinstance(value, (list, tuple)) else [value])]
        return [entry for entry in items if entry is not None] or None

    return Norm(f"each {item.name}", apply)


def parts(name: str, **norms: Norm) -> Norm:
    """An object whose named parts take their own normaliser, the others `plain`."""

    def apply(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return plain(value)
        out = {key: norms[key](item) if key in norms else plain(item) for key, item in value.items()}
        return {key: item for key, item in out.items() if item is not None} or None

    return Norm(name, apply)


PLAIN = Norm("value", plain)  # no field-specific rule: the rule a difference names is just "value"
TEXT = Norm("text", text)
EMAIL = Norm("email", email)
PHONE = Norm("phone", phone)
NUMBER = Norm("number", number)
MONEY = Norm("money", money)
DATETIME = Norm("datetime (UTC)", datetime_utc)
DATE = Norm("date", day)
CLOCK = Norm("time", clock)
BOOLEAN = Norm("boolean", boolean)
LINK = Norm("link", link)
LINKS = Norm("links", links)

# Standard fields of every object (the request bodies of `mapping/payload.py` and `steps/targets.py`), by body key:
# one key means one thing across objects (`value` is a deal's number and a lead's {amount, currency}: MONEY takes both).
STANDARD: dict[str, Norm] = {
    **{key: LINK for key in ("owner_id", "org_id", "person_id", "deal_id", "lead_id", "product_id", "stage_id", "pipeline_id",
                             "organization_id", "rel_owner_org_id", "rel_linked_org_id", "user_id", "parent")},
    **{key: DATETIME for key in ("add_time", "close_time", "won_time", "lost_time", "archive_time")},
    **{key: DATE for key in ("expected_close_date", "due_date", "birthday")},
    **{key: CLOCK for key in ("due_time", "duration")},
    **{key: BOOLEAN for key in ("done", "busy", "is_archived", "is_linkable", "was_seen")},
    **{key: NUMBER for key in ("quantity", "discount", "tax", "probability", "employee_count", "size", "visible_to")},
    **{key: MONEY for key in ("value", "annual_revenue", "item_price")},
    **{key: TEXT for key in ("name", "title", "subject", "content", "note", "comments", "description", "code", "unit", "website",
                             "linkedin", "lost_reason", "type", "status", "currency", "discount_type", "tax_method", "file_name")},
    "emails": each(parts("email", value=EMAIL, label=TEXT, primary=BOOLEAN)),
    "phones": each(parts("phone", value=PHONE, label=TEXT, primary=BOOLEAN)),
    "prices": each(parts("price", price=MONEY, cost=MONEY, direct_cost=MONEY, currency=TEXT)),
    "participants": each(parts("participant", person_id=LINK, primary=BOOLEAN)),
}

# Custom fields, by Pipedrive field type.
CUSTOM: dict[str, Norm] = {
    "varchar": TEXT, "varchar_auto": TEXT, "text": TEXT, "phone": PHONE, "double": NUMBER, "monetary": MONEY,
    "date": DATE, "time": parts("time", value=CLOCK), "user": LINK, "org": LINK, "people": LINK,
}


def field_norms(fields: PayloadFields, extra_options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Norm]:
    """Body key -> normaliser for one object: the standard keys, its option fields, and its custom fields by key.

    `extra_options` adds option-like fields whose labels live elsewhere (a lead's `label_ids`: the lead labels' names).
    """
    norms = dict(STANDARD)
    for key, labels in {**fields.options, **(extra_options or {})}.items():
        if key not in fields.codes and labels:  # a standard option field (`industry`, `category`, `label_ids`)
            norms[key] = options(labels, f"option ({key})")
    for name, code in fields.codes.items():
        labels = fields.options.get(name)
        if labels is not None and fields.types.get(name) in ("enum", "set"):
            norms[code] = options(labels)
        else:
            norms[code] = CUSTOM.get(fields.types.get(name, ""), PLAIN)
    return norms
