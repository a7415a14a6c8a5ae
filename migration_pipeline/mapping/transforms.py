"""Value transforms: pure, vectorised functions from a Dynamics column to a Pipedrive value.

Each returns a `Carried`: the values to stage and, per row, the reason a value could not be
carried (None where it was). A value that cannot be carried is never silently dropped: the
caller turns every reason into a row of `staged.rejects`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

# A URL Pipedrive will show as a link: an optional http(s) scheme, a dotted host name, an optional path.
URL_PATTERN = re.compile(r"^(https?://)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:\d{1,5})?([/?#]\S*)?$", re.IGNORECASE)
# An address mail can be sent to: dot-separated atoms of the characters RFC 5322 allows unquoted
# (no spaces, no leading, trailing or doubled dot), `@`, and a dotted host name with a letter TLD.
# Written without look-arounds, so Arrow's RE2 runs it natively over a million values in a blink.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
EMAIL_PATTERN = rf"(?i)^{_ATOM}(?:\.{_ATOM})*@(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+[a-z]{{2,63}}$"


@dataclass
class Carried:
    values: pd.Series
    problems: pd.Series  # reason per row, None where the value was carried as is

    def __post_init__(self) -> None:
        self.problems = self.problems.astype(object).where(self.problems.notna(), None)

    @classmethod
    def clean(cls, values: pd.Series) -> Carried:
        return cls(values, no_problems(values.index))


def no_problems(index: pd.Index) -> pd.Series:
    return pd.Series([None] * len(index), index=index, dtype=object)


def _blank_to_none(series: pd.Series) -> pd.Series:
    stripped = series.astype("string").str.strip()
    return stripped.mask(stripped == "", pd.NA)


def text(series: pd.Series, max_length: int | None = None) -> Carried:
    """Trimmed text; empty becomes null; longer than `max_length` is cut, and the cut reported."""
    values = _blank_to_none(series)
    problems = no_problems(series.index)
    if max_length is not None:
        too_long = values.str.len().fillna(0) > max_length
        problems[too_long] = f"cut to {max_length} characters (Pipedrive's limit)"
        values = values.where(~too_long, values.str.slice(0, max_length))
    return Carried(values.astype(object).where(values.notna(), None), problems)


def url(series: pd.Series) -> Carried:
    """A website URL; one without a scheme gets `https://`; anything else is rejected."""
    values = _blank_to_none(series)
    valid = values.str.match(URL_PATTERN).fillna(False).astype(bool)
    invalid = values.notna() & ~valid
    fixed = values.where(values.str.match(r"(?i)^https?://").fillna(True).astype(bool), "https://" + values)
    problems = no_problems(series.index)
    problems[invalid] = "not a valid website URL"
    carried = fixed.where(valid, pd.NA)
    return Carried(carried.astype(object).where(carried.notna(), None), problems)


def email(series: pd.Series) -> Carried:
    """An email address, trimmed; one that is not well-formed is rejected, never guessed at."""
    values = _blank_to_none(series)
    valid = values.astype("string[pyarrow]").str.match(EMAIL_PATTERN).fillna(False).astype(bool)
    problems = no_problems(series.index)
    problems[values.notna() & ~valid] = "not a valid email address"
    carried = values.where(valid, pd.NA)
    return Carried(carried.astype(object).where(carried.notna(), None), problems)


def integer(series: pd.Series, min_value: float | None = None, max_value: float | None = None) -> Carried:
    """A whole number within [min_value, max_value]; others are rejected."""
    numbers = pd.to_numeric(series, errors="coerce")
    problems = no_problems(series.index)
    unparsable = series.notna() & numbers.isna()
    problems[unparsable] = "not a number"
    out_of_range = pd.Series(False, index=series.index)
    if min_value is not None:
        out_of_range |= numbers < min_value
    if max_value is not None:
        out_of_range |= numbers > max_value
    problems[out_of_range] = f"outside the allowed range [{min_value}, {max_value}]"
    kept = numbers.where(~out_of_range).round()
    return Carried(pd.Series([None if pd.isna(v) else int(v) for v in kept], index=series.index, dtype=object), problems)


def money(series: pd.Series) -> Carried:
    """An amount rounded to whole units (Pipedrive's `annual_revenue` is an integer)."""
    return integer(series)


def date(series: pd.Series) -> Carried:
    """A calendar date as Pipedrive writes it, `YYYY-MM-DD`; a date-and-time keeps its UTC date."""
    return _timestamp(series, "%Y-%m-%d", "not a date")


def datetime_text(series: pd.Series) -> Carried:
    """A date and time in UTC as ISO 8601 text (`2024-05-01T10:00:00Z`): Pipedrive has no date-time field type."""
    return _timestamp(series, "%Y-%m-%dT%H:%M:%SZ", "not a date and time")


def _timestamp(series: pd.Series, format: str, problem: str) -> Carried:
    values = _blank_to_none(series)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    problems = no_problems(series.index)
    problems[values.notna() & parsed.isna()] = problem
    carried = parsed.dt.strftime(format)
    return Carried(carried.astype(object).where(parsed.notna(), None), problems)


def option_label(labels: pd.Series, multiple: bool = False) -> Carried:
    """A choice's label (the extract keeps it in `<column>__label`); several, `; `-separated, for a multi-select."""
    values = _blank_to_none(labels)
    if not multiple:
        return Carried.clean(values.astype(object).where(values.notna(), None))
    split = [None if pd.isna(v) else [part.strip() for part in str(v).split(";") if part.strip()] or None for v in values]
    return Carried.clean(pd.Series(split, index=labels.index, dtype=object))


def yes_no(series: pd.Series) -> Carried:
    """A two-option Dynamics value as the label of Pipedrive's Yes/No enum."""
    values = series.astype("boolean")
    return Carried.clean(pd.Series([None if pd.isna(v) else ("Yes" if v else "No") for v in values], index=series.index, dtype=object))


def monetary(amounts: pd.Series, currencies: pd.Series) -> Carried:
    """An amount in its own currency, as a monetary custom field holds it: `{"value": 12.5, "currency": "EUR"}`."""
    numbers = pd.to_numeric(amounts, errors="coerce")
    problems = no_problems(amounts.index)
    problems[amounts.notna() & numbers.isna()] = "not a number"
    problems[numbers.notna() & currencies.isna()] = "amount without a known currency"
    values = [
        {"value": round(float(n), 2), "currency": str(c)} if pd.notna(n) and isinstance(c, str) else None
        for n, c in zip(numbers, currencies, strict=True)
    ]
    return Carried(pd.Series(values, index=amounts.index, dtype=object), problems)


def owner(series: pd.Series, owner_map: dict[str, int], fallback_owner_id: int | None) -> Carried:
    """A Dynamics owner id -> a Pipedrive user id, through the confirmed owner map."""
    mapped = [owner_map.get(value.lower()) if isinstance(value, str) else None for value in series.astype(object)]
    missing = pd.Series([value is None for value in mapped], index=series.index)
    problems = no_problems(series.index)
    if fallback_owner_id is None:
        problems[missing] = "owner not in the owner map and no fallback user"
    values = [fallback_owner_id if value is None else int(value) for value in mapped]
    return Carried(pd.Series(values, index=series.index, dtype=object), problems)


ADDRESS_PARTS = {
    # Dynamics address column suffix -> Pipedrive address subfield
    "line1": "route",
    "city": "locality",
    "stateorprovince": "admin_area_level_1",
    "postalcode": "postal_code",
    "country": "country",
}


def address(frame: pd.DataFrame) -> Carried:
    """An address object: `value` is the one-line composite, the parts go to their subfields."""
    parts = {column: _blank_to_none(frame[column]) for column in frame.columns}
    ordered = [parts[column] for column in frame.columns]
    stacked = pd.concat(ordered, axis=1)
    composite = stacked.apply(lambda row: ", ".join(str(v) for v in row if isinstance(v, str)), axis=1)
    values = []
    for index, value in composite.items():
        if not value:
            values.append(None)
            continue
        item: dict[str, str] = {"value": value}
        for column, series in parts.items():
            subfield = ADDRESS_PARTS.get(column.rsplit("_", 1)[-1])
            if subfield and isinstance(series[index], str):
                item[subfield] = series[index]
        values.append(item)
    return Carried.clean(pd.Series(values, index=frame.index, dtype=object))


def missing_required(values: pd.Series) -> pd.Series:
    """True where a required value is absent."""
    return values.map(lambda value: value is None or (isinstance(value, float) and np.isnan(value)))
