"""What every object's rules share: the stage they produce, the context they read, and the value checks.

A rule turns raw Dynamics tables (as the extractor writes them) into an `ObjectStage`: the
staged rows, ready to become request bodies, and an account of every source record that did
not become a staged row as is: a value not carried (`rejects`, field by field, or the whole
record) or a record deliberately folded into another (`merged`, with the rule named).

The checks here are vectorised over Arrow arrays (RE2 regexes, no Python loop per row), because
contacts -> persons has to run at well over 100,000 records a second. Each returns a
`Carried` (values, and per row the reason a value was not carried), the same shape the
workbook transforms in `mapping/transforms.py` return, so a rule records every problem the same
way: `Outcomes.carry`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from migration_pipeline.mapping import transforms
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.mapping.stages import StageMap
from migration_pipeline.mapping.transforms import ADDRESS_PARTS, Carried

REJECT_COLUMNS = ["object", "source_id", "field", "value", "reason", "rule"]
MERGED_COLUMNS = ["object", "source_id", "into_object", "into_source_id", "rule"]
DYNAMICS_ID = f"custom:{DYNAMICS_ID_FIELD}"

# Pipedrive's limits. Names, titles and subjects, and `varchar` custom fields, hold 255 characters;
# notes about 100,000. Long-text (`text`) custom fields have no published limit: 65,535 is a
# conservative assumption, and a cut there is reported like any other.
NAME_LIMIT = 255
VARCHAR_LIMIT = 255
TEXT_LIMIT = 65_535
NOTE_LIMIT = 100_000
# A plausible head count: Pipedrive stores any integer, but a count outside this is a typo.
MAX_EMPLOYEES = 10_000_000
# Pipedrive's numeric fields hold at most 14 digits.
MAX_AMOUNT = 10**14 - 1

# Dynamics writes date-times as UTC `YYYY-MM-DDTHH:MM:SSZ`; anything else is parsed on the slow path.
RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
ISO_DATE = r"^\d{4}-\d{2}-\d{2}"
# A phone number after normalisation: an optional `+`, 6 to 15 digits (E.164 allows 15) with the
# usual separators, and an optional extension written ` ext. 123`.
_SEPARATORS = r"[ ().\-/]"
PHONE_RE2 = rf"^\+?{_SEPARATORS}*(?:[0-9]{_SEPARATORS}*){{6,15}}(?: ext\. [0-9]{{1,6}})?$"
# What marks a phone number as needing more than a trim.
_PHONE_NEEDS_WORK = r"\s\s|\t|^00|\(0\)|(?i:extension|ext|x)\s*\.?\s*[0-9]+$"
_EXTENSION = r"(?i)\s*(?:ext\.?|extension|x)\s*([0-9]{1,6})$"


@dataclass(kw_only=True)
class RuleContext:
    """What the rules need beyond the rows: the confirmed plan's maps and a few settings.

    `owners` is `OwnerMap.lookup()` (lower-case Dynamics owner id -> Pipedrive user id); teams and
    unmatched owners are in it already when a fallback user was confirmed. `base_currency` is
    the one currency organizations' revenue is consolidated into.
    """

    owners: dict[str, int] = field(default_factory=dict)
    fallback_owner_id: int | None = None
    stage_map: StageMap | None = None
    base_currency: str
    max_file_bytes: int = 50 * 1024 * 1024
    placeholder_org_name: str = "Contacts without an organization (Dynamics)"


@dataclass
class ObjectStage:
    """One Pipedrive object's staged rows and the account of every source record that is not one.

    `staged`: `source_id`, then one column per Pipedrive field (v2 name), custom fields as
    `custom:<Field Name>`, links as `ref:<field>:<object>` holding the linked record's source id.
    `rejects`: object, source_id, field, value, reason, rule. `merged`: object, source_id,
    into_object, into_source_id, rule. `extra`: frames only some objects have (see each module).
    """

    object: str
    staged: pd.DataFrame
    rejects: pd.DataFrame
    merged: pd.DataFrame
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    def rejected_records(self) -> pd.Series:
        """Source ids of this object's records rejected as a whole (not just one of their values)."""
        whole = (self.rejects["object"] == self.object) & (self.rejects["field"] == "*")
        return self.rejects.loc[whole, "source_id"]


class Outcomes:
    """Collects a rule's rejects and merges as it goes, then builds its `ObjectStage`."""

    def __init__(self, object_name: str) -> None:
        self.object = object_name
        self._rejects: list[pd.DataFrame] = []
        self._merged: list[pd.DataFrame] = []

    def reject(self, source_ids: Any, field_name: str, values: Any, reason: Any, rule: str, object_name: str | None = None) -> None:
        """One row per source id: `field_name` "*" means the whole record is not migrated."""
        ids = _as_strings(source_ids)
        if len(ids) == 0:
            return
        self._rejects.append(
            pd.DataFrame(
                {
                    "object": object_name or self.object,
                    "source_id": ids,
                    "field": field_name,
                    "value": _as_strings(values, len(ids)),
                    "reason": _as_strings(reason, len(ids)),
                    "rule": rule,
                }
            )
        )

    def merge(self, source_ids: Any, into_object: str, into_ids: Any, rule: str, object_name: str | None = None) -> None:
        ids = _as_strings(source_ids)
        if len(ids) == 0:
            return
        self._merged.append(
            pd.DataFrame(
                {
                    "object": object_name or self.object,
                    "source_id": ids,
                    "into_object": into_object,
                    "into_source_id": _as_strings(into_ids, len(ids)),
                    "rule": rule,
                }
            )
        )

    def carry(self, carried: Carried, source_ids: pd.Series, field_name: str, original: pd.Series, rule: str) -> pd.Series:
        """The carried values; every row with a problem becomes a reject of `field_name`."""
        problems = carried.problems
        bad = problems.notna().to_numpy()
        if bad.any():
            self.reject(source_ids[bad], field_name, original[bad], problems[bad], rule)
        return carried.values

    def carry_column(
        self, frame: pd.DataFrame, source_ids: pd.Series, column: str, field_name: str, check: Callable[[pd.Series], Carried], rule: str
    ) -> pd.Series:
        """`check` applied to `frame[column]` and carried into `field_name`; problems reported as rule `<rule>:<column>`."""
        return self.carry(check(frame[column]), source_ids, field_name, frame[column], f"{rule}:{column}")

    def stage(self, staged: pd.DataFrame, **extra: pd.DataFrame) -> ObjectStage:
        return ObjectStage(self.object, staged.reset_index(drop=True), self.rejects(), self.merged(), dict(extra))

    def rejects(self) -> pd.DataFrame:
        return _concat(self._rejects, REJECT_COLUMNS)

    def merged(self) -> pd.DataFrame:
        return _concat(self._merged, MERGED_COLUMNS)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    return pd.concat(frames, ignore_index=True)[columns].astype(object)


def _as_strings(values: Any, length: int | None = None) -> np.ndarray:
    """Values as an object array of str (None where missing); a scalar is repeated `length` times."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pd.Series(values.to_pandas())
    if isinstance(values, pd.Series) and isinstance(values.dtype, (pd.StringDtype, pd.ArrowDtype)) and values.dtype.kind in "OUT":
        return values.to_numpy(dtype=object, na_value=None)
    if isinstance(values, (pd.Series, pd.Index, np.ndarray, list)):
        return np.array([None if _missing(item) else _text(item) for item in values], dtype=object)
    scalar = None if _missing(values) else _text(values)
    return np.full(length or 0, scalar, dtype=object)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _text(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str) else str(value)


# --- Arrow <-> pandas --------------------------------------------------------------------------


def strings(series: pd.Series) -> pa.Array:
    """The column as one Arrow string array, nulls where missing, whatever dtype it arrived in."""
    if not isinstance(series.dtype, (pd.StringDtype, pd.ArrowDtype)) or (
        isinstance(series.dtype, pd.ArrowDtype) and not pa.types.is_string(series.dtype.pyarrow_dtype)
    ):
        values = series.to_numpy(dtype=object)
        try:
            return pa.array(values, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers and other values: as their text
            return pa.array([None if _missing(v) else _text(v) for v in values], type=pa.string())
    data = series.array.__arrow_array__()
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks() if data.num_chunks else pa.array([], pa.string())
    return data.cast(pa.string())


def arrow_series(array: pa.Array | pa.ChunkedArray, index: pd.Index | None = None) -> pd.Series:
    """An Arrow array as a pandas column (values read back as plain str, int, list, dict or NA)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(array), index=index)


def plain_series(values: pd.Series | np.ndarray | list[Any], index: pd.Index | None = None) -> pd.Series:
    """An object column with None where missing (NaN and NA included)."""
    series = pd.Series(values, index=index, dtype=object) if not isinstance(values, pd.Series) else values.astype(object)
    return series.where(series.notna(), None)


def reasons(mask: pa.Array | np.ndarray, reason: str, index: pd.Index) -> pd.Series:
    """A problems column: `reason` where `mask`, None elsewhere."""
    flags = mask.to_numpy(zero_copy_only=False) if isinstance(mask, (pa.Array, pa.ChunkedArray)) else np.asarray(mask)
    problems = np.full(len(index), None, dtype=object)
    problems[flags.astype(bool)] = reason
    return pd.Series(problems, index=index, dtype=object)


def no_problems(index: pd.Index) -> pd.Series:
    return pd.Series(np.full(len(index), None, dtype=object), index=index, dtype=object)


def _null_strings(length: int) -> pa.Array:
    return pa.nulls(length, pa.string())


def _flag(values: pa.Array) -> pa.Array:
    """A boolean array with nulls read as False."""
    return pc.fill_null(values, False)


def is_in(values: pd.Series, members: Iterable[Any] | pd.Series | pd.Index) -> np.ndarray:
    """Per row, whether the value (compared as a string) is one of `members`: an Arrow hash lookup.

    pandas' `isin` on Arrow strings walks the members in Python; ids sets here run to millions.
    """
    if isinstance(members, (pd.Series, pd.Index)):
        member_array = strings(pd.Series(members, dtype=object) if isinstance(members, pd.Index) else members)
    else:
        member_array = pa.array([str(member) for member in members], type=pa.string())
    return _flag(pc.is_in(strings(values), value_set=member_array)).to_numpy(zero_copy_only=False)


def lowered(values: pd.Series) -> np.ndarray:
    """Trimmed, lower-cased strings as an object array (None where blank): ids compared the way Dynamics means them."""
    return _objects(pc.utf8_lower(trimmed(values)))


def grouped(keys: Iterable[Any], values: Iterable[Any]) -> dict[Any, list[Any]]:
    """Values collected per key, in the order given (pandas' Python-level group-by is far slower)."""
    out: dict[Any, list[Any]] = {}
    for key, value in zip(keys, values, strict=True):
        out.setdefault(key, []).append(value)
    return out


# --- text ---------------------------------------------------------------------------------------


def trimmed(series: pd.Series) -> pa.Array:
    """Trimmed strings; blank becomes null."""
    values = pc.utf8_trim_whitespace(strings(series))
    return pc.if_else(_flag(pc.equal(values, "")), _null_strings(len(values)), values)


def text(series: pd.Series, limit: int) -> Carried:
    """Trimmed text cut to Pipedrive's `limit`; the cut is reported, as `transforms.text` does."""
    values = trimmed(series)
    too_long = _flag(pc.greater(pc.utf8_length(values), limit))
    cut = pc.if_else(too_long, pc.utf8_slice_codeunits(values, 0, limit), values)
    return Carried(arrow_series(cut, series.index), reasons(too_long, f"cut to {limit} characters (Pipedrive's limit)", series.index))


def texts(limit: int) -> Callable[[pd.Series], Carried]:
    """`text` with its limit bound, for `Outcomes.carry_column`."""
    return lambda series: text(series, limit)


def first_present(*columns: pd.Series) -> pd.Series:
    """Per row, the first non-blank value of `columns` (e.g. full name, else first + last)."""
    result = trimmed(columns[0])
    for column in columns[1:]:
        result = pc.coalesce(result, trimmed(column))
    return arrow_series(result, columns[0].index)


def joined(columns: Sequence[pd.Series], separator: str) -> pd.Series:
    """The non-blank values of `columns` joined by `separator`, per row; null where all are blank."""
    pieces = [pc.fill_null(pc.binary_join_element_wise(pa.scalar(separator), trimmed(column), ""), "") for column in columns]
    together = pc.utf8_slice_codeunits(pc.binary_join_element_wise(*pieces, ""), len(separator))
    together = pc.if_else(_flag(pc.equal(together, "")), _null_strings(len(together)), together)
    return arrow_series(together, columns[0].index)


def html_text(series: pd.Series) -> pd.Series:
    """Plain text as the HTML Pipedrive notes hold: escaped, line breaks as <br>."""
    values = series.astype(object).where(series.notna(), None)
    return values.map(lambda value: None if value is None else html.escape(str(value).strip()).replace("\r\n", "\n").replace("\n", "<br>"))


def cut_html(values: pd.Series, limit: int) -> Carried:
    """HTML cut to `limit` characters without leaving half an entity or tag; the cut reported."""
    too_long = values.map(lambda value: isinstance(value, str) and len(value) > limit)

    def cut(value: str) -> str:
        value = value[:limit]
        for opener, closer in (("&", ";"), ("<", ">")):
            start = value.rfind(opener)
            if start != -1 and closer not in value[start:]:
                value = value[:start]
        return value

    out = values.where(~too_long, values[too_long].map(cut))
    return Carried(out, reasons(too_long.to_numpy(), f"cut to {limit} characters (Pipedrive's limit)", values.index))


# --- emails and phones ----------------------------------------------------------------------------


email = transforms.email  # one email rule for the workbook, the rules and the audit


def phone(series: pd.Series) -> Carried:
    """A phone number normalised, or rejected when it is not one.

    Normalising keeps the number as the person wrote it (Pipedrive stores free text) and only
    makes it consistent: whitespace collapsed, the `00` international prefix written `+`, the
    `(0)` trunk digit after a country code dropped, any extension written ` ext. 123`. A value
    with letters, or fewer than 6 or more than 15 digits ("n/a", "ask for Bob", "12"), is
    rejected field by field.
    """
    values = trimmed(series)
    needs_work = _flag(pc.match_substring_regex(values, _PHONE_NEEDS_WORK))
    if pc.any(needs_work).as_py():
        rows = pc.filter(values, needs_work)
        rows = pc.replace_substring_regex(rows, r"\s+", " ")
        rows = pc.replace_substring_regex(rows, r"^00 ?", "+")
        rows = pc.replace_substring_regex(rows, r"^(\+[0-9]{1,3}) ?\(0\) ?", r"\1 ")
        rows = pc.replace_substring_regex(rows, _EXTENSION, r" ext. \1")
        values = pc.replace_with_mask(values, needs_work, rows)
    valid = _flag(pc.match_substring_regex(values, PHONE_RE2))
    bad = pc.and_(pc.is_valid(values), pc.invert(valid))
    kept = pc.if_else(valid, values, _null_strings(len(values)))
    return Carried(arrow_series(kept, series.index), reasons(bad, "not a phone number (letters, or not 6 to 15 digits)", series.index))


@dataclass(frozen=True)
class ContactItem:
    """One source column of a person's emails or phones, with its Pipedrive label."""

    column: str
    label: str


def contact_list(
    carried: Sequence[tuple[ContactItem, Carried]], source_ids: pd.Series, outcomes: Outcomes, field_name: str, rule: str
) -> pd.Series:
    """`[{value, primary, label}]` per row from several columns: exactly one primary, the first kept.

    A value repeated in a later column (same text, any case) is carried once and the repeat
    reported. Rows with no value get null, so the field is left out of the body.
    """
    index = source_ids.index
    arrays = [strings(item.values) for _, item in carried]
    valid = np.column_stack([pc.is_valid(array).to_numpy(zero_copy_only=False) for array in arrays])
    lowered = [pc.utf8_lower(array) for array in arrays]
    for later in range(1, len(arrays)):
        for earlier in range(later):
            same = _flag(pc.equal(lowered[later], lowered[earlier])).to_numpy(zero_copy_only=False) & valid[:, earlier]
            repeat = same & valid[:, later]
            if repeat.any():
                source = carried[earlier][0].column
                outcomes.reject(source_ids[repeat], field_name, arrays[later].filter(pa.array(repeat)),
                                f"same as {source}; carried once", f"{rule}_duplicate:{carried[later][0].column}")
                valid[:, later] &= ~repeat
    rows, slots = np.nonzero(valid)
    values = pc.take(pa.concat_arrays(arrays), pa.array(slots * len(index) + rows))
    labels = pa.array(np.array([item.label for item, _ in carried], dtype=object)[slots], pa.string())
    primary = pa.array(np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.array([], dtype=bool))
    items = pa.StructArray.from_arrays([values, primary, labels], names=["value", "primary", "label"])
    counts = valid.sum(axis=1)
    offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))
    return arrow_series(pa.ListArray.from_arrays(offsets, items, mask=pa.array(counts == 0)), index)


# --- addresses ------------------------------------------------------------------------------------


def address(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """A Pipedrive address object per row: `value` the one-line composite, parts in their subfields.

    Each Dynamics column maps to a subfield by its suffix (`address1_city` -> `locality`, as in
    `transforms.ADDRESS_PARTS`); rows with no part at all get null.
    """
    present = [column for column in columns if column in frame.columns]
    composite = strings(joined([frame[column] for column in present], ", "))
    names, children = ["value"], [composite]
    for column in present:
        subfield = ADDRESS_PARTS.get(column.rsplit("_", 1)[-1])
        if subfield and subfield not in names:
            names.append(subfield)
            children.append(trimmed(frame[column]))
    struct = pa.StructArray.from_arrays(children, names=names, mask=pc.is_null(composite))
    return arrow_series(struct, frame.index)


# --- times --------------------------------------------------------------------------------------


def utc_timestamp(series: pd.Series) -> Carried:
    """A date-time as UTC RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`), the form v2 bodies take."""
    values = trimmed(series)
    fast = _flag(pc.match_substring_regex(values, RFC3339_UTC))
    slow = pc.and_(pc.is_valid(values), pc.invert(fast)).to_numpy(zero_copy_only=False)
    problems = no_problems(series.index)
    if slow.any():
        raw = pd.Series(values.filter(pa.array(slow)).to_pylist(), dtype=object)
        parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
        text_values = parsed.dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object).where(parsed.notna(), None)
        values = pc.replace_with_mask(values, pa.array(slow), pa.array(text_values.tolist(), pa.string()))
        unparsable = np.zeros(len(series), dtype=bool)
        unparsable[np.flatnonzero(slow)[parsed.isna().to_numpy()]] = True
        problems[unparsable] = "not a date-time"
    return Carried(arrow_series(values, series.index), problems)


def v1_timestamp(series: pd.Series) -> Carried:
    """A date-time as UTC `YYYY-MM-DD HH:MM:SS`, the form v1 bodies (notes) take."""
    carried = utc_timestamp(series)
    values = strings(carried.values)
    values = pc.utf8_slice_codeunits(pc.replace_substring(values, "T", " ", max_replacements=1), 0, 19)
    return Carried(arrow_series(values, series.index), carried.problems)


def iso_date(series: pd.Series) -> Carried:
    """A calendar date `YYYY-MM-DD` (a date-time keeps its UTC date); impossible dates are rejected."""
    values = trimmed(series)
    shaped = _flag(pc.match_substring_regex(values, ISO_DATE))
    day = pc.utf8_slice_codeunits(values, 0, 10)
    parsed = pd.to_datetime(pd.Series(day.to_pylist(), dtype=object), format="%Y-%m-%d", errors="coerce")
    valid = shaped.to_numpy(zero_copy_only=False) & parsed.notna().to_numpy()
    bad = pc.is_valid(values).to_numpy(zero_copy_only=False) & ~valid
    kept = pc.if_else(pa.array(valid), day, _null_strings(len(day)))
    return Carried(arrow_series(kept, series.index), reasons(bad, "not a date", series.index))


def hhmm(minutes: pd.Series) -> Carried:
    """A duration in minutes as `HH:MM`, the form v2 activities take; 24 hours or more cannot be said."""
    numbers = pd.to_numeric(minutes, errors="coerce")
    fits = numbers.notna() & (numbers >= 0) & (numbers < 24 * 60)
    whole = numbers.where(fits, 0).round().astype(int)
    text_values = (whole // 60).map("{:02d}".format) + ":" + (whole % 60).map("{:02d}".format)
    problems = no_problems(minutes.index)
    problems[(numbers.notna() & ~fits).to_numpy()] = "a duration of 24 hours or more cannot be written as HH:MM"
    return Carried(plain_series(text_values.where(fits, None)), problems)


# --- owners ---------------------------------------------------------------------------------------


def owner(series: pd.Series, context: RuleContext) -> Carried:
    """A Dynamics owner id -> a Pipedrive user id, through the confirmed owner map.

    Unmatched owners (and teams, which Pipedrive does not have) go to the fallback user; the
    owner map already says so for every owner it knows. Without a fallback user the value is
    rejected and the record migrates owned by the API user, which the load refuses to reach
    (`migrate confirm` blocks an unresolved owner).
    """
    ids = pc.utf8_lower(trimmed(series))
    keys = pa.array(list(context.owners), pa.string())
    users = pa.array(list(context.owners.values()), pa.int64())
    found = pc.take(users, pc.index_in(ids, value_set=keys))
    if context.fallback_owner_id is not None:
        found = pc.coalesce(found, pa.scalar(context.fallback_owner_id, pa.int64()))
    missing = pc.is_null(found)
    return Carried(arrow_series(found, series.index), reasons(missing, "owner not in the owner map and no fallback user", series.index))


# --- currencies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Currencies:
    """Dynamics currencies: ISO code and exchange rate (units per Dynamics base-currency unit) by id."""

    codes: dict[str, str]
    rates: dict[str, float]

    @classmethod
    def from_raw(cls, transactioncurrencies: pd.DataFrame) -> Currencies:
        ids = transactioncurrencies["transactioncurrencyid"].astype(str).str.lower()
        codes = dict(zip(ids, transactioncurrencies["isocurrencycode"].astype(str).str.strip().str.upper(), strict=True))
        rates = dict(zip(ids, pd.to_numeric(transactioncurrencies["exchangerate"], errors="coerce"), strict=True))
        return cls(codes, {key: float(rate) for key, rate in rates.items() if pd.notna(rate) and rate > 0})

    def code_of(self, ids: pd.Series) -> pd.Series:
        return plain_series(ids.astype(object).map(lambda value: self.codes.get(str(value).lower()) if isinstance(value, str) else None))

    def rate_of(self, ids: pd.Series) -> pd.Series:
        return ids.astype(object).map(lambda value: self.rates.get(str(value).lower()) if isinstance(value, str) else None).astype(float)

    def rate_of_code(self, code: str) -> float:
        """Units of `code` per Dynamics base-currency unit; a currency Dynamics does not know fails loudly."""
        for currency_id, iso in self.codes.items():
            if iso == code.upper() and currency_id in self.rates:
                return self.rates[currency_id]
        known = ", ".join(sorted(set(self.codes.values())))
        raise ValueError(f"base currency {code!r} is not a Dynamics currency with an exchange rate (known: {known})")


def base_currency_of(transactioncurrencies: pd.DataFrame, organizations: pd.DataFrame | None = None) -> str:
    """The Dynamics organisation's base currency: `organizations.basecurrencyid`, else the one at rate 1."""
    currencies = Currencies.from_raw(transactioncurrencies)
    if organizations is not None and len(organizations) and "_basecurrencyid_value" in organizations:
        base_id = str(organizations["_basecurrencyid_value"].iloc[0]).lower()
        if base_id in currencies.codes:
            return currencies.codes[base_id]
    at_one = sorted({currencies.codes[key] for key, rate in currencies.rates.items() if rate == 1.0})
    if len(at_one) != 1:
        raise ValueError(f"cannot tell the base currency from the exchange rates (rate 1: {at_one or 'none'}); set it explicitly")
    return at_one[0]


# --- links between migrated records ---------------------------------------------------------------


class Links:
    """Where each Dynamics record landed, so a later object can point at it.

    Registered per Dynamics table after its rule ran: a staged record lands on itself, a merged
    one on the record it was folded into (a qualified lead on its deal), as long as that record
    is staged. Aliases add other ways in, such as the person created for a lead. Lookups are
    Arrow hash joins, so resolving a million contacts' accounts takes a fraction of a second.
    """

    def __init__(self) -> None:
        self._landing: dict[str, pa.Table] = {}
        self._staged: dict[str, pd.Index] = {}

    def add(self, table: str, stage: ObjectStage, include: Iterable[str] | None = None) -> None:
        """Register `stage` for Dynamics `table` (its staged ids, or only those in `include`)."""
        ids = stage.staged["source_id"].astype(str)
        self._staged[stage.object] = self._staged.get(stage.object, pd.Index([], dtype=object)).append(pd.Index(ids)).unique()
        if include is not None:
            ids = ids[is_in(ids, set(include))]
        self._put(table, ids, pd.Series(stage.object, index=ids.index), ids)
        folded = stage.merged[stage.merged["object"] == stage.object]
        for into_object, rows in folded.groupby("into_object"):
            rows = rows[is_in(rows["into_source_id"], self.staged(str(into_object)))]
            self._put(table, rows["source_id"], pd.Series(str(into_object), index=rows.index), rows["into_source_id"])

    def alias(self, table: str, ids: pd.Series, object_name: str, source_ids: pd.Series) -> None:
        """Dynamics ids of `table` that land on `object_name` records `source_ids`."""
        self._put(table, ids, pd.Series(object_name, index=ids.index), source_ids)

    def _put(self, table: str, ids: pd.Series, objects: pd.Series, source_ids: pd.Series) -> None:
        added = pa.table({
            "key": pc.utf8_lower(strings(ids.astype(str))),
            "object": strings(objects.astype(str)),
            "source_id": strings(source_ids.astype(str)),
        })
        landing = pa.concat_tables([self._landing[table], added]) if table in self._landing else added
        first = pc.equal(pc.index_in(landing["key"], value_set=landing["key"]), pa.array(np.arange(landing.num_rows)))
        self._landing[table] = landing.filter(first)

    def staged(self, object_name: str) -> pd.Index:
        return self._staged.get(object_name, pd.Index([], dtype=object))

    def resolve(self, tables: pd.Series | str, ids: pd.Series) -> pd.DataFrame:
        """`object` and `source_id` of each (table, id); None for both where it landed nowhere."""
        keys = pc.utf8_lower(trimmed(ids))
        objects = pa.nulls(len(keys), pa.string())
        source_ids = pa.nulls(len(keys), pa.string())
        names = [tables] if isinstance(tables, str) else [str(name) for name in tables.dropna().unique()]
        for name in names:
            landing = self._landing.get(name)
            if landing is None:
                continue
            found = pc.index_in(keys, value_set=landing["key"])
            if not isinstance(tables, str):
                found = pc.if_else(pa.array((tables == name).to_numpy(dtype=bool)), found, pa.nulls(len(keys), pa.int32()))
            objects = pc.coalesce(objects, pc.take(landing["object"], found))
            source_ids = pc.coalesce(source_ids, pc.take(landing["source_id"], found))
        return pd.DataFrame({"object": _objects(objects), "source_id": _objects(source_ids)}, index=ids.index, dtype=object)


def _objects(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow strings as an object array with None where null."""
    return values.to_pandas().to_numpy(dtype=object, na_value=None) if len(values) else np.array([], dtype=object)


def ref_column(field_name: str, object_name: str) -> str:
    """`ref:<field>:<object>`: a link the loader fills from `idmap.<object>`."""
    return f"ref:{field_name}:{object_name}"


def synthetic_id(kind: str, key: str) -> str:
    """A stable source id for a record the migration creates (a Dynamics GUID never holds `:`)."""
    return f"{kind}:{key}"


def normalized_name(series: pd.Series) -> pd.Series:
    """Names compared the way people mean them: trimmed, spaces collapsed, case folded."""
    return series.astype(object).map(lambda value: " ".join(str(value).split()).casefold() if isinstance(value, str) and value.strip() else None)


def frame_of(columns: Mapping[str, Any], index: pd.Index) -> pd.DataFrame:
    """A staged frame from columns (Series, arrays or scalars), in the given order."""
    return pd.DataFrame({name: value for name, value in columns.items()}, index=index)
