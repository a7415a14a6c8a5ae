"""Synthetic Dynamics 365 Sales data, and the Pipedrive account it migrates into.

`generate(records, seed)` builds a `DataverseDataset` that looks like a real sales organisation
that has been used for years: parent-account hierarchies (and one loop), several currencies,
sloppy URLs, phone numbers and emails, two sales processes, qualified leads, bundles and write-in
products, notes with awkward attachments, departed and unmatched users, team-owned records and a
custom table. Every such case is *planted* on purpose and recorded in `dataset.planted`, so tests
and the audit's self-check compare what the tool reports against ground truth.

Generation is columnar: small pools of realistic values (names, companies, cities...) are drawn
from Faker once per seed, and every table is then assembled with numpy choices over those pools.
That keeps a million-record sandbox well under a minute, and the same `(records, seed)` always
gives byte-identical output, because every table draws from its own RNG derived from the seed.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from faker import Faker

from migration_pipeline.sandbox import catalog
from migration_pipeline.sandbox.dataset import (
    LOOKUP_LOGICAL_NAME,
    Attachment,
    DataverseDataset,
    EntityDef,
    OrganizationSettings,
    PipedrivePlan,
    PipedriveSeed,
)


@dataclass
class SyntheticData:
    dataverse: DataverseDataset
    pipedrive: PipedriveSeed


MIN_RECORDS = 100
MAX_RECORDS = 1_000_000

# Share of the business records per table, and the floor that keeps every planted case alive
# at the smallest size (the floors add up to less than MIN_RECORDS).
SHARES: dict[str, tuple[float, int]] = {
    "accounts": (0.10, 12),
    "contacts": (0.25, 20),
    "opportunities": (0.10, 14),
    "leads": (0.08, 8),
    "activities": (0.30, 16),
    "annotations": (0.08, 12),
    "opportunityproducts": (0.07, 8),
    "products": (0.02, 6),
}
ACTIVITY_SHARES = {"phonecall": 0.30, "email": 0.35, "task": 0.20, "appointment": 0.15}

# The clock of the sandbox: data spans 2019 up to this instant, never the wall clock.
NOW = int(np.datetime64("2025-06-01T00:00:00", "s").astype(np.int64))
EPOCH = int(np.datetime64("2019-01-01T00:00:00", "s").astype(np.int64))
DAY = 86_400

ORG_DOMAIN = "contoso.com"
FREE_MAIL = np.array(["gmail.com", "outlook.com", "yahoo.com", "hotmail.co.uk", "web.de", "icloud.com"])

# (ISO code, name, symbol, units per one USD, precision). USD is the base currency.
CURRENCIES = (
    ("USD", "US Dollar", "$", 1.0, 2),
    ("EUR", "Euro", "€", 0.92, 2),
    ("GBP", "Pound Sterling", "£", 0.79, 2),
    ("JPY", "Japanese Yen", "¥", 151.5, 0),
)
CURRENCY_WEIGHTS = np.array([0.55, 0.2, 0.15, 0.1])

# Two sales processes with their own stages: (stage name, stage category, probability %).
SALES_PROCESSES: dict[str, tuple[tuple[str, int, int], ...]] = {
    "Enterprise Sales Process": (("Qualify", 0, 10), ("Develop", 1, 25), ("Propose", 2, 50),
                                 ("Negotiate", 2, 75), ("Close", 3, 90)),
    "SMB Sales Process": (("Discovery", 0, 20), ("Demo", 1, 40), ("Proposal", 2, 70), ("Closing", 3, 90)),
}

INVALID_WEBSITES = ("htp://broken-link", "not a website", "http://", "www.example com", "https://exa mple.com",
                    "http//missing-colon.com", "mailto:info@example.com")
MALFORMED_EMAILS = ("{l}@@{d}", "{l} at {d}", "{l}@{host}", "{l}@{d}..", "{l}.{d}", "@{d}")
UNSAFE_FILENAMES = (
    "../../etc/passwd",
    'Q3 forecast: final*?"<>|.xlsx',
    "Ångström résumé – 履歴書.docx",
    "signed contract " + "very " * 45 + "long name.pdf",
    "..\\..\\windows\\system32\\drivers\\etc\\hosts",
    "CON.txt",
)
MIME_TYPES = (
    ("application/pdf", "pdf", b"%PDF-1.7\n"),
    ("image/png", "png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", "jpg", b"\xff\xd8\xff\xe0"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", b"PK\x03\x04"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", b"PK\x03\x04"),
    ("text/plain", "txt", b""),
    ("text/csv", "csv", b""),
)
GARBAGE_PHONES = ("n/a", "call reception", "ask for Bob", "12", "+", "tbd", "see email", "0000")

PIPEDRIVE_DEFAULT_STAGES = ("Qualified", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started")


def plan_counts(records: int) -> dict[str, int]:
    """How many rows each business table gets; the counts add up to `records` exactly."""
    if not MIN_RECORDS <= records <= MAX_RECORDS:
        raise ValueError(f"records must be between {MIN_RECORDS} and {MAX_RECORDS}, got {records}")
    counts = {name: max(floor, int(records * share)) for name, (share, floor) in SHARES.items()}
    # Floors can overshoot at small sizes: take the excess from the tables furthest above theirs.
    for _ in range(sum(counts.values()) - records):
        name = max(counts, key=lambda t: counts[t] - SHARES[t][1])
        counts[name] -= 1
    counts["activities"] += records - sum(counts.values())
    return counts


def generate(records: int = 1000, seed: int = 42, *, pipedrive_existing: bool = True) -> SyntheticData:
    """Build the Dataverse dataset of `records` business records and the matching Pipedrive seed."""
    return _Generator(records, seed).run(pipedrive_existing)


# --- vectorised helpers ---------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GUID_LAYOUT = np.array([*range(0, 8), -1, *range(8, 12), -1, *range(12, 16), -1, *range(16, 20), -1, *range(20, 32)])


def guids(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` random version-4 UUIDs as lower-case strings, formatted without a Python loop."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    positions = np.flatnonzero(_GUID_LAYOUT >= 0)
    out[:, positions] = hexed[:, _GUID_LAYOUT[positions]]
    return out.view("S36").ravel().astype("U36")


def iso(seconds: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """Epoch seconds -> `YYYY-MM-DDTHH:MM:SSZ` strings (None where `missing`)."""
    text = np.char.add(np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s"), "Z")
    return _blank(text, missing)


def iso_date(seconds: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """Epoch seconds -> `YYYY-MM-DD` strings (None where `missing`)."""
    return _blank(np.datetime_as_string((seconds // DAY).astype("datetime64[D]"), unit="D"), missing)


def _blank(values: np.ndarray, missing: np.ndarray | None) -> np.ndarray:
    if missing is None or not missing.any():
        return values
    out = values.astype(object)
    out[missing] = None
    return out


def cat(*parts: Any) -> np.ndarray:
    """Element-wise string concatenation of arrays and scalars."""
    return functools.reduce(np.char.add, [np.asarray(p, dtype=str) for p in parts])


def digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """`n` zero-padded random numbers of exactly `width` digits."""
    if n == 0:
        return np.array([], dtype=f"<U{width}")
    return np.char.zfill(rng.integers(0, 10**width, n).astype(str), width)


def ascii_slug(text: str, separator: str = "") -> str:
    """`"Müller & Söhne GmbH"` -> `"mullersohnegmbh"`: a safe email local part or domain label."""
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", separator, flat).strip(separator)


def dedupe(values: np.ndarray, separator: str = "") -> np.ndarray:
    """Append the occurrence number to every repeat (`"a", "a"` -> `"a", "a2"`)."""
    occurrence = pd.Series(values).groupby(values, sort=False).cumcount().to_numpy()
    repeated = occurrence > 0
    if repeated.any():
        values = values.copy().astype(object)
        values[repeated] = cat(values[repeated].astype(str), separator, occurrence[repeated] + 1)
        return values.astype(str)
    return values


def dedupe_email(emails: np.ndarray) -> np.ndarray:
    """Make emails unique by numbering the local part of repeats (`jo.doe2@x.com`)."""
    occurrence = pd.Series(emails).groupby(emails, sort=False).cumcount().to_numpy()
    repeated = np.flatnonzero(occurrence > 0)
    out = emails.copy()
    if len(repeated):
        local, _, domain = np.char.partition(emails[repeated], "@").T
        out[repeated] = cat(local, occurrence[repeated] + 1, "@", domain)
    return out


def phones(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Phone numbers in the many formats a CRM collects over the years, and which format each is.

    Kind 8 is garbage that no normaliser can turn into a number.
    """
    kinds = rng.choice(9, n, p=[0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.08, 0.08, 0.04])
    out = np.empty(n, dtype=object)
    builders = (
        lambda k: cat("+44 20 ", digits(rng, k, 4), " ", digits(rng, k, 4)),
        lambda k: cat("(", rng.integers(201, 990, k), ") ", digits(rng, k, 3), "-", digits(rng, k, 4)),
        lambda k: cat("0049 ", rng.integers(30, 990, k), " ", digits(rng, k, 7)),
        lambda k: cat("+1-", rng.integers(201, 990, k), "-555-", digits(rng, k, 4), " ext. ", rng.integers(1, 9999, k)),
        lambda k: cat(rng.integers(201, 990, k), ".", digits(rng, k, 3), ".", digits(rng, k, 4), " x", digits(rng, k, 3)),
        lambda k: cat("+33 1 ", digits(rng, k, 2), " ", digits(rng, k, 2), " ", digits(rng, k, 2), " ", digits(rng, k, 2)),
        lambda k: cat("020 ", digits(rng, k, 4), " ", digits(rng, k, 4)),
        lambda k: cat("+49 (0)30 ", digits(rng, k, 8)),
        lambda k: np.array(GARBAGE_PHONES)[rng.integers(0, len(GARBAGE_PHONES), k)],
    )
    for kind, build in enumerate(builders):
        rows = np.flatnonzero(kinds == kind)
        if len(rows):
            out[rows] = build(len(rows))
    return out.astype(str), kinds


def _rng(seed: int, name: str) -> np.random.Generator:
    """One independent, reproducible stream per table, so tables don't shift each other."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _between(rng: np.random.Generator, lo: np.ndarray | int, hi: np.ndarray | int, n: int) -> np.ndarray:
    lo = np.broadcast_to(np.asarray(lo, dtype=np.int64), (n,))
    hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), (n,))
    return lo + (rng.random(n) * np.maximum(hi - lo, 0)).astype(np.int64)


def _disjoint(rng: np.random.Generator, n: int, *sizes: int) -> list[np.ndarray]:
    """Disjoint random index sets of the given sizes out of `range(n)` (planted cases never overlap)."""
    order = rng.permutation(n)
    bounds = np.cumsum((0, *sizes))
    if bounds[-1] > n:
        raise ValueError(f"cannot plant {bounds[-1]} cases in {n} rows")
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _column_dtype(attribute_type: str) -> str:
    if attribute_type in ("Integer", "BigInt", "Picklist", "State", "Status"):
        return "Int64"
    if attribute_type in ("Money", "Decimal", "Double"):
        return "float64"
    if attribute_type == "Boolean":
        return "boolean"
    return "str"


# --- pools ----------------------------------------------------------------------------------


@dataclass
class _Pools:
    """Realistic values drawn from Faker once per seed, then combined by index."""

    first: np.ndarray
    first_slug: np.ndarray
    last: np.ndarray
    last_slug: np.ndarray
    companies: np.ndarray
    company_domains: np.ndarray
    streets: np.ndarray
    cities: np.ndarray
    states: np.ndarray
    postcodes: np.ndarray
    countries: np.ndarray
    job_titles: np.ndarray
    sentences: np.ndarray
    catch_phrases: np.ndarray

    @classmethod
    def draw(cls, seed: int) -> _Pools:
        fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
        fake.seed_instance(seed)
        first = sorted({fake.first_name() for _ in range(600)})
        last = sorted({fake.last_name() for _ in range(600)})
        companies = sorted({fake.company() for _ in range(500)})
        addresses = [(fake.street_address(), fake.city(), fake["en_US"].state(), fake.postcode(), locale)
                     for locale in ("United States", "United Kingdom", "Germany", "France")
                     for _ in range(100)]
        tlds = np.array([".com", ".com", ".co.uk", ".de", ".io", ".net", ".fr"])
        fake_rng = np.random.default_rng(seed)
        domains = [ascii_slug(c.split(",")[0]) + tlds[fake_rng.integers(len(tlds))] for c in companies]
        arr = lambda values: np.array(values, dtype=str)  # noqa: E731
        return cls(
            first=arr(first), first_slug=arr([ascii_slug(x) for x in first]),
            last=arr(last), last_slug=arr([ascii_slug(x) for x in last]),
            companies=arr(companies), company_domains=arr(domains),
            streets=arr([a[0].replace("\n", ", ") for a in addresses]), cities=arr([a[1] for a in addresses]),
            states=arr([a[2] for a in addresses]), postcodes=arr([a[3] for a in addresses]),
            countries=arr([a[4] for a in addresses]),
            job_titles=arr(sorted({fake["en_US"].job() for _ in range(200)})),
            sentences=arr([fake["en_US"].paragraph(nb_sentences=3) for _ in range(300)]),
            catch_phrases=arr([fake["en_US"].catch_phrase() for _ in range(300)]),
        )

    def pick(self, rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
        return pool[rng.integers(0, len(pool), n)]


# --- the generator --------------------------------------------------------------------------


class _Generator:
    """Builds the tables in dependency order; each step reads the ids of the tables before it."""

    def __init__(self, records: int, seed: int) -> None:
        self.records = records
        self.seed = seed
        self.counts = plan_counts(records)
        self.pools = _Pools.draw(seed)
        self.tables: dict[str, pd.DataFrame] = {}
        self.planted: dict[str, Any] = {}
        self.attachments: dict[str, Attachment] = {}
        self._version = 1000

    def run(self, pipedrive_existing: bool) -> SyntheticData:
        self.currencies()
        self.users_and_teams()
        self.processes()
        self.products()
        self.accounts()
        self.contacts()
        self.opportunities_and_leads()
        self.opportunity_products()
        self.activities()
        self.annotations()
        self.projects()
        organization = OrganizationSettings(
            organization_id=self.tables["organizations"]["organizationid"].iloc[0],
            name=self.tables["organizations"]["name"].iloc[0],
            base_currency_id=self.currency_ids[0],
        )
        dataset = DataverseDataset(
            entities=dict(catalog.ENTITIES), relationships=list(catalog.RELATIONSHIPS), tables=self.tables,
            attachments=self.attachments, organization=organization, planted=plain(self.planted),
        )
        return SyntheticData(dataverse=dataset, pipedrive=_PipedriveSeeder(self, pipedrive_existing).seed())

    # -- plumbing

    def rng(self, name: str) -> np.random.Generator:
        return _rng(self.seed, name)

    def store(self, entity_name: str, columns: dict[str, Any]) -> pd.DataFrame:
        """Type the columns from the catalog, in catalog order, and check none is missing or extra."""
        entity = catalog.ENTITIES[entity_name]
        frame: dict[str, Any] = {}
        for attribute in entity.attributes:
            if attribute.logical_name == "versionnumber" or _served_elsewhere(entity, attribute.logical_name):
                continue
            frame[attribute.column] = pd.Series(columns.pop(attribute.column)).astype(_column_dtype(attribute.attribute_type))
            if attribute.is_polymorphic:
                companion = attribute.column + LOOKUP_LOGICAL_NAME
                frame[companion] = pd.Series(columns.pop(companion)).astype("str")
        if columns:
            raise ValueError(f"{entity_name}: columns not in the catalog: {sorted(columns)}")
        table = pd.DataFrame(frame)
        order = np.argsort(table["modifiedon"].to_numpy(), kind="stable") if "modifiedon" in table else np.arange(len(table))
        version = np.empty(len(table), dtype=np.int64)
        version[order] = self._version + np.arange(len(table))
        self._version += len(table)
        table["versionnumber"] = pd.array(version, dtype="Int64")
        self.tables[entity.entity_set_name] = table
        return table

    def stamps(self, rng: np.random.Generator, n: int, start: np.ndarray | int = EPOCH) -> tuple[np.ndarray, np.ndarray]:
        """Creation and modification instants (epoch seconds), created after `start`."""
        created = _between(rng, start, NOW - 30 * DAY, n)
        modified = _between(rng, created, NOW, n)
        return created, modified

    def owners(self, rng: np.random.Generator, n: int, team_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Owner GUIDs and logical names; the first rows cycle through every owning user once."""
        ids = self.owner_pool[rng.choice(len(self.owner_pool), n, p=self.owner_weights)]
        ids[: min(n, len(self.owner_pool))] = self.owner_pool[: min(n, len(self.owner_pool))]
        names = np.full(n, "systemuser", dtype=object)
        if team_share:
            team_rows = np.flatnonzero(rng.random(n) < team_share)
            team_rows = team_rows[team_rows >= len(self.owner_pool)]
            ids[team_rows] = self.owner_teams[rng.integers(0, len(self.owner_teams), len(team_rows))]
            names[team_rows] = "team"
        return ids, names

    def money_in(self, currency_index: np.ndarray, base_amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(amount in the record's currency, the same in base currency, the record's exchange rate)."""
        rates = self.currency_rates[currency_index]
        precision = self.currency_precisions[currency_index]
        amount = np.where(precision == 0, np.round(base_amounts * rates), np.round(base_amounts * rates, 2))
        return amount, self.base_money(amount, rates), rates

    def base_money(self, amount: np.ndarray, rates: np.ndarray) -> np.ndarray:
        """Dataverse's `_base` twin: the amount divided by the record's units-per-base-unit rate."""
        return np.round(amount / rates, 4)

    # -- reference tables

    def currencies(self) -> None:
        rng = self.rng("transactioncurrencies")
        n = len(CURRENCIES)
        self.currency_ids = guids(rng, n)
        self.currency_codes = np.array([c[0] for c in CURRENCIES])
        self.currency_rates = np.array([c[3] for c in CURRENCIES])
        self.currency_precisions = np.array([c[4] for c in CURRENCIES])
        created = np.full(n, EPOCH - 400 * DAY)
        modified = created + np.arange(n) * DAY
        self.store("transactioncurrency", {
            "transactioncurrencyid": self.currency_ids,
            "currencyname": [c[1] for c in CURRENCIES], "isocurrencycode": self.currency_codes,
            "currencysymbol": [c[2] for c in CURRENCIES], "exchangerate": self.currency_rates,
            "currencyprecision": self.currency_precisions,
            "statecode": np.zeros(n, int), "statuscode": np.ones(n, int),
            "createdon": iso(created), "modifiedon": iso(modified),
        })
        org_id = guids(rng, 1)
        self.store("organization", {
            "organizationid": org_id, "name": ["Contoso Sales"], "_basecurrencyid_value": self.currency_ids[:1],
            "maxuploadfilesize": [131_072_000], "expirechangetrackingindays": [30],
            "createdon": iso(created[:1]), "modifiedon": iso(np.array([NOW - 90 * DAY])),
        })

    def users_and_teams(self) -> None:
        """System users: an application user, departed (disabled) users, users with no Pipedrive
        seat (unmatched), users whose email differs from Pipedrive only in case or whitespace."""
        rng = self.rng("systemusers")
        pools = self.pools
        n = int(np.clip(self.records // 2500, 10, 400))
        first_idx = rng.integers(0, len(pools.first), n)
        last_idx = rng.integers(0, len(pools.last), n)
        first, last = pools.first[first_idx].astype(object), pools.last[last_idx].astype(object)
        emails = dedupe_email(cat(pools.first_slug[first_idx], ".", pools.last_slug[last_idx], "@", ORG_DOMAIN)).astype(object)
        ids = guids(rng, n)
        disabled = np.zeros(n, dtype=bool)
        disabled[[1, 2]] = True
        access = np.zeros(n, dtype=int)
        application_id = np.full(n, None, dtype=object)
        first[0], last[0], emails[0] = "#", "Pipedrive Migration", "pipedrive-migration@contoso.onmicrosoft.com"
        access[0] = 4
        application_id[0] = guids(rng, 1)[0]
        # What Dynamics stores: some addresses differ from the Pipedrive login only in case or whitespace.
        stored = emails.copy().astype(object)
        stored[5] = stored[5].title()
        stored[6] = f"  {stored[6]} "
        created, modified = self.stamps(rng, n, EPOCH - 300 * DAY)
        self.store("systemuser", {
            "systemuserid": ids, "fullname": cat(first, " ", last), "firstname": first, "lastname": last,
            "internalemailaddress": stored, "domainname": emails,
            "title": pools.pick(rng, pools.job_titles, n), "isdisabled": disabled, "accessmode": access,
            "applicationid": application_id, "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.user_ids, self.user_emails, self.user_names = ids, emails, cat(first, " ", last)
        # Who owns records: everyone but the application user and one departed user who owned nothing.
        owning = np.array([i for i in range(n) if i not in (0, 2)])
        weights = np.where(disabled[owning], 0.2, 1.0)
        self.owner_pool = ids[owning].astype(object)
        self.owner_weights = weights / weights.sum()
        self.active_user_ids = ids[~disabled & (access != 4)]
        self.matched_user_index = np.array([i for i in range(n) if i not in (0, 1, 2, 3, 4)])
        self.planted.update({
            "application_user_ids": [ids[0]],
            "disabled_user_ids": list(ids[disabled]),
            "unmatched_owner_ids": list(ids[[1, 3, 4]]),  # own records, no Pipedrive user with that email
            "email_case_variant_user_ids": [ids[5]],
            "email_whitespace_variant_user_ids": [ids[6]],
        })

        team_rng = self.rng("teams")
        names = ["Contoso Sales", "Key Accounts EMEA", "Inside Sales"]
        team_ids = guids(team_rng, 3)
        created, modified = self.stamps(team_rng, 3, EPOCH - 300 * DAY)
        self.store("team", {
            "teamid": team_ids, "name": names, "teamtype": [0, 0, 0],
            "_administratorid_value": self.active_user_ids[:3] if len(self.active_user_ids) >= 3 else ids[[3, 3, 3]],
            "isdefault": [True, False, False],
            "description": [None, "Strategic accounts in Europe", "Telesales and SMB"],
            "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.owner_teams = team_ids[1:].astype(object)

    def processes(self) -> None:
        """Workflows of every category for the audit inventory, the two sales BPFs and their stages,
        and plug-in steps the application user may not read."""
        rng = self.rng("workflows")
        rows = [
            # name, unique name, category, primary entity, statecode, mode
            ("Enterprise Sales Process", "cr7f2_enterprisesalesprocess", 4, "opportunity", 1, 0),
            ("SMB Sales Process", "cr7f2_smbsalesprocess", 4, "opportunity", 1, 0),
            ("Phone to Case Process", "phonetocaseprocess", 4, "incident", 0, 0),
            ("Send welcome email to new contacts", "cr7f2_welcomeemail", 0, "contact", 1, 0),
            ("Notify owner when opportunity is won", "cr7f2_notifywon", 0, "opportunity", 1, 1),
            ("Legacy: update pipeline phase", "new_updatepipelinephase", 0, "opportunity", 0, 0),
            ("Require phone when email is missing", "cr7f2_requirephone", 2, "contact", 1, 1),
            ("Default probability by stage", "cr7f2_defaultprobability", 2, "opportunity", 1, 1),
            ("Recalculate project budget", "cr7f2_RecalculateProjectBudget", 3, "cr7f2_project", 1, 1),
        ]
        n = len(rows)
        ids = guids(rng, n)
        created, modified = self.stamps(rng, n, EPOCH - 200 * DAY)
        owners, owner_types = self.owners(rng, n)
        self.store("workflow", {
            "workflowid": ids, "name": [r[0] for r in rows], "uniquename": [r[1] for r in rows],
            "category": [r[2] for r in rows], "primaryentity": [r[3] for r in rows], "type": np.ones(n, int),
            "mode": [r[5] for r in rows], "scope": np.full(n, 4), "description": [None] * n,
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "statecode": [r[4] for r in rows], "statuscode": [r[4] + 1 for r in rows],
            "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.process_ids = {name: ids[i] for i, name in enumerate(SALES_PROCESSES)}

        stage_rng = self.rng("processstages")
        stage_rows = [(process, name, category, probability)
                      for process, stages in SALES_PROCESSES.items() for name, category, probability in stages]
        m = len(stage_rows)
        self.stage_ids = guids(stage_rng, m)
        self.stage_process = np.array([r[0] for r in stage_rows])
        self.stage_names = np.array([r[1] for r in stage_rows])
        self.stage_categories = np.array([r[2] for r in stage_rows])
        self.stage_probabilities = np.array([r[3] for r in stage_rows])
        self.stage_position = np.array([[s[0] for s in SALES_PROCESSES[r[0]]].index(r[1]) for r in stage_rows])
        stage_created = np.repeat(created[:2], [len(s) for s in SALES_PROCESSES.values()])
        self.store("processstage", {
            "processstageid": self.stage_ids, "stagename": self.stage_names, "stagecategory": self.stage_categories,
            "_processid_value": [self.process_ids[p] for p in self.stage_process],
            "primaryentitytypecode": np.full(m, "opportunity"),
            "createdon": iso(stage_created), "modifiedon": iso(stage_created),
        })
        self.planted["sales_processes"] = {
            process: {"workflowid": self.process_ids[process],
                      "stages": [{"processstageid": self.stage_ids[i], "stagename": self.stage_names[i],
                                  "probability": int(self.stage_probabilities[i])}
                                 for i in np.flatnonzero(self.stage_process == process)]}
            for process in SALES_PROCESSES
        }
        self.planted["workflow_counts_by_category"] = {int(c): sum(r[2] == c for r in rows) for c in sorted({r[2] for r in rows})}

        step_rng = self.rng("sdkmessageprocessingsteps")
        steps = [("Contoso.Plugins.AccountNumber: Create of account", 20, 0, "accountnumber"),
                 ("Contoso.Plugins.OpportunityGuard: Update of opportunity", 10, 0, "statecode,estimatedvalue"),
                 ("Contoso.Plugins.ErpSync: Update of account", 40, 1, "name,address1_line1"),
                 ("Contoso.Plugins.LeadScoring: Create of lead", 40, 1, None)]
        k = len(steps)
        created, modified = self.stamps(step_rng, k, EPOCH)
        self.store("sdkmessageprocessingstep", {
            "sdkmessageprocessingstepid": guids(step_rng, k), "name": [s[0] for s in steps],
            "description": [s[0] for s in steps], "stage": [s[1] for s in steps], "mode": [s[2] for s in steps],
            "rank": np.ones(k, int), "filteringattributes": [s[3] for s in steps],
            "statecode": [0, 0, 0, 1], "statuscode": [1, 1, 1, 2],
            "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.planted["plugin_step_count"] = k

    # -- products and price lists

    def products(self) -> None:
        """Products, one bundle of three members, one price list per currency (plus an expired one)."""
        rng = self.rng("products")
        n = self.counts["products"]
        families = np.array(["Analytics", "CRM", "Helpdesk", "Marketing Automation", "Payroll", "Inventory",
                             "Field Service", "Data Warehouse", "Mobile SDK", "Identity", "Backup", "Telephony"])
        editions = np.array(["Starter", "Professional", "Enterprise", "Add-on", "Support Plan", "Onboarding"])
        names = dedupe(cat(families[rng.integers(0, len(families), n)], " ",
                           editions[rng.integers(0, len(editions), n)]), " v").astype(object)
        names[0] = "Enterprise Suite Bundle"
        ids = guids(rng, n)
        price = np.round(np.exp(rng.normal(6.5, 1.2, n)), 2)
        structure = np.ones(n, int)
        structure[0] = 3
        members = np.arange(1, 4)
        price[0] = np.round(price[members].sum() * 0.85, 2)
        state = rng.choice(4, n, p=[0.88, 0.06, 0.04, 0.02])
        state[:4] = 0
        status = np.array([1, 2, 0, 3])[state]
        created, modified = self.stamps(rng, n, EPOCH - 100 * DAY)

        list_rng = self.rng("pricelevels")
        list_ids = guids(list_rng, len(CURRENCIES) + 1)
        list_currency = np.array([*range(len(CURRENCIES)), 0])
        self.price_list_ids = list_ids[: len(CURRENCIES)]
        list_created = np.full(len(list_ids), EPOCH - 120 * DAY)
        self.store("pricelevel", {
            "pricelevelid": list_ids,
            "name": [*(f"Standard {c[0]}" for c in CURRENCIES), "Standard USD 2018 (expired)"],
            "_transactioncurrencyid_value": self.currency_ids[list_currency],
            "begindate": iso_date(list_created), "enddate": [None] * len(CURRENCIES) + [iso_date(np.array([EPOCH]))[0]],
            "description": [None] * len(list_ids), "statecode": [0] * len(CURRENCIES) + [1],
            "statuscode": [100001] * len(CURRENCIES) + [100002],
            "createdon": iso(list_created), "modifiedon": iso(list_created),
        })
        standard = np.round(price * rng.uniform(0.3, 0.7, n), 2)
        self.store("product", {
            "productid": ids, "name": names, "productnumber": cat("PRD-", np.char.zfill(np.arange(1, n + 1).astype(str), 6)),
            "description": _blank(self.pools.pick(rng, self.pools.catch_phrases, n), rng.random(n) < 0.3),
            "price": price, "price_base": price, "standardcost": standard, "standardcost_base": standard,
            "currentcost": standard, "currentcost_base": standard,
            "producttypecode": rng.choice([1, 3, 4, 2], n, p=[0.6, 0.25, 0.1, 0.05]), "productstructure": structure,
            "quantitydecimal": np.zeros(n, int), "_pricelevelid_value": np.full(n, list_ids[0]),
            "_transactioncurrencyid_value": np.full(n, self.currency_ids[0]), "exchangerate": np.ones(n),
            "statecode": state, "statuscode": status, "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.product_ids, self.product_names, self.product_prices = ids, names, price
        self.sellable_products = np.flatnonzero((state == 0) & (structure == 1))

        assoc_rng = self.rng("productassociations")
        k = len(members)
        self.store("productassociation", {
            "productassociationid": guids(assoc_rng, k), "_productid_value": np.full(k, ids[0]),
            "_associatedproduct_value": ids[members], "quantity": [1.0, 2.0, 1.0], "productisrequired": [1, 1, 0],
            "statecode": np.zeros(k, int), "statuscode": np.ones(k, int),
            "createdon": iso(created[members]), "modifiedon": iso(created[members]),
        })
        self.bundle_members = members
        self.planted["bundle_product_ids"] = [ids[0]]
        self.planted["bundle_member_product_ids"] = {ids[0]: list(ids[members])}

        item_rng = self.rng("productpricelevels")
        product_index = np.tile(np.arange(n), len(CURRENCIES))
        currency_index = np.repeat(np.arange(len(CURRENCIES)), n)
        amount, amount_base, rates = self.money_in(currency_index, price[product_index])
        self.store("productpricelevel", {
            "productpricelevelid": guids(item_rng, len(product_index)),
            "_pricelevelid_value": self.price_list_ids[currency_index], "_productid_value": ids[product_index],
            "amount": amount, "amount_base": amount_base, "pricingmethodcode": np.ones(len(product_index), int),
            "percentage": np.full(len(product_index), np.nan),
            "_transactioncurrencyid_value": self.currency_ids[currency_index], "exchangerate": rates,
            "createdon": iso(created[product_index]), "modifiedon": iso(modified[product_index]),
        })

    # -- accounts and contacts

    def accounts(self) -> None:
        rng = self.rng("accounts")
        pools = self.pools
        n = self.counts["accounts"]
        company = rng.integers(0, len(pools.companies), n)
        qualifiers = np.array(["", "", "", " Holdings", " Group", " International", " Labs", " Partners", " Europe"])
        names = dedupe(cat(pools.companies[company], qualifiers[rng.integers(0, len(qualifiers), n)]), " ")
        domains = pools.company_domains[company]
        ids = guids(rng, n)

        # Hierarchies: one 3-account loop, one chain 4 levels deep, and random chains of 2-4 levels.
        parent = np.full(n, -1)
        parent[[0, 1, 2]] = [1, 2, 0]
        parent[[4, 5, 6]] = [3, 4, 5]
        rest = rng.permutation(np.arange(7, n))[: int(0.3 * (n - 7))]
        sizes = rng.integers(2, 5, len(rest) // 2 + 1)
        starts = np.zeros(len(rest), dtype=bool)
        starts[np.cumsum(np.concatenate(([0], sizes)))[:-1][np.cumsum(np.concatenate(([0], sizes)))[:-1] < len(rest)]] = True
        chained = np.flatnonzero(~starts)
        parent[rest[chained]] = rest[chained - 1]

        currency = rng.choice(len(CURRENCIES), n, p=CURRENCY_WEIGHTS)
        currency[: len(CURRENCIES)] = np.arange(len(CURRENCIES))
        revenue_missing = rng.random(n) < 0.15
        revenue, revenue_base, rates = self.money_in(currency, np.round(np.exp(rng.normal(15, 1.6, n)), -3))
        revenue[revenue_missing] = np.nan
        revenue_base[revenue_missing] = np.nan

        website = _blank(cat("https://www.", domains).astype(object), rng.random(n) < 0.1)
        bad_sites, bad_staff = _disjoint(rng, n, 5, 2)
        website[bad_sites] = np.array(INVALID_WEBSITES)[rng.integers(0, len(INVALID_WEBSITES), len(bad_sites))]
        employees = np.round(np.exp(rng.normal(4.5, 1.8, n))).astype(float)
        employees[rng.random(n) < 0.1] = np.nan
        employees[bad_staff] = [-12, 1_500_000_000]
        industry = rng.integers(1, 34, n).astype(float)
        industry[rng.random(n) < 0.15] = np.nan
        address = rng.integers(0, len(pools.streets), n)
        phone, _ = phones(rng, n)
        tier = rng.choice(list(catalog.CUSTOMER_TIERS), n).astype(float)
        tier[rng.random(n) < 0.3] = np.nan
        region_sets = np.array(["100000000", "100000001", "100000002", "100000003", "100000000,100000003",
                                "100000000,100000001", "100000001,100000002,100000003"])
        regions = _blank(region_sets[rng.integers(0, len(region_sets), n)], rng.random(n) < 0.4)
        owners, owner_types = self.owners(rng, n, team_share=0.05)
        team_owned = np.flatnonzero(owner_types == "team")
        if len(team_owned) < 2:  # tiny datasets: plant two team-owned accounts after the user cycle
            rows = np.arange(len(self.owner_pool), len(self.owner_pool) + 2) % n
            owners[rows] = self.owner_teams[0]
            owner_types[rows] = "team"
        state = (rng.random(n) < 0.08).astype(int)
        created, modified = self.stamps(rng, n)
        self.store("account", {
            "accountid": ids, "name": names,
            "accountnumber": _blank(cat("ACC-", np.char.zfill(np.arange(1, n + 1).astype(str), 7)), rng.random(n) < 0.2),
            "_parentaccountid_value": _blank(ids[np.maximum(parent, 0)], parent < 0),
            "_primarycontactid_value": np.full(n, None),  # filled once contacts exist
            "websiteurl": website, "industrycode": industry, "numberofemployees": employees,
            "revenue": revenue, "revenue_base": revenue_base,
            "_transactioncurrencyid_value": self.currency_ids[currency], "exchangerate": rates,
            "telephone1": _blank(phone, rng.random(n) < 0.2),
            "emailaddress1": _blank(cat(np.array(["info@", "sales@", "contact@", "hello@"])[rng.integers(0, 4, n)], domains),
                                    rng.random(n) < 0.3),
            "address1_line1": pools.streets[address], "address1_city": pools.cities[address],
            "address1_stateorprovince": _blank(pools.states[address], pools.countries[address] != "United States"),
            "address1_postalcode": pools.postcodes[address], "address1_country": pools.countries[address],
            "description": _blank(self.pools.pick(rng, pools.catch_phrases, n), rng.random(n) < 0.6),
            "cr7f2_customertier": tier, "new_region": regions,
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "statecode": state, "statuscode": state + 1, "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.account_ids, self.account_names, self.account_domains = ids, names, domains
        self.account_currency, self.account_created = currency, created
        depth = np.ones(n, dtype=int)  # levels in the chain ending at each account (the loop excluded)
        for _ in range(4):
            has_parent = (parent >= 0) & (np.arange(n) > 2)
            depth = np.where(has_parent, depth[np.maximum(parent, 0)] + 1, 1)
        self.planted.update({
            "circular_account_ids": list(ids[[0, 1, 2]]),
            "deep_chain_account_ids": list(ids[[3, 4, 5, 6]]),  # root first
            "max_account_chain_depth": int(depth.max()),
            "child_account_count": int((parent >= 0).sum()),
            "invalid_website_account_ids": list(ids[bad_sites]),
            "employee_count_out_of_range_account_ids": list(ids[bad_staff]),
            "team_owned_account_ids": list(ids[owner_types == "team"]),
            "accounts_by_currency": {code: int((currency == i).sum()) for i, code in enumerate(self.currency_codes)},
            "accounts_with_industry": int((~np.isnan(industry)).sum()),
        })

    def contacts(self) -> None:
        rng = self.rng("contacts")
        pools = self.pools
        n = self.counts["contacts"]
        ids = guids(rng, n)
        first_idx = rng.integers(0, len(pools.first), n)
        last_idx = rng.integers(0, len(pools.last), n)
        first, last = pools.first[first_idx], pools.last[last_idx]

        scale = max(1, n // 100)
        orphans, child_contacts, malformed, duplicates = _disjoint(rng, n, 2 * scale, 2 * scale, 2 * scale, 4 * scale)
        account = rng.integers(0, len(self.account_ids), n)
        account[orphans] = -1
        with_account = np.flatnonzero(account >= 0)
        parent_contact = np.full(n, -1)
        candidates = np.setdiff1d(with_account, child_contacts)
        parent_contact[child_contacts] = rng.choice(candidates, len(child_contacts))
        account[child_contacts] = -1
        # A contact under another contact works for that contact's company.
        company_of = np.where(parent_contact >= 0, account[np.maximum(parent_contact, 0)], account)
        local = cat(pools.first_slug[first_idx], ".", pools.last_slug[last_idx])
        domain = np.where(company_of >= 0, self.account_domains[np.maximum(company_of, 0)],
                          FREE_MAIL[rng.integers(0, len(FREE_MAIL), n)])
        email1 = dedupe_email(cat(local, "@", domain)).astype(object)
        email1[rng.random(n) < 0.05] = None
        email2 = _blank(cat(local, rng.integers(1, 99, n), "@", FREE_MAIL[rng.integers(0, len(FREE_MAIL), n)]),
                        rng.random(n) > 0.15)
        email3 = np.full(n, None, dtype=object)
        patterns = np.array(MALFORMED_EMAILS)[rng.integers(0, len(MALFORMED_EMAILS), len(malformed))]
        for row, pattern in zip(malformed, patterns):
            email1[row] = f"{local[row]}@{domain[row]}"
            email2[row] = f"{local[row]}.home@{FREE_MAIL[row % len(FREE_MAIL)]}"
            email3[row] = pattern.format(l=local[row], d=domain[row], host=domain[row].split(".")[0])
        originals, copies = duplicates[0::2], duplicates[1::2]
        email1[originals] = cat(local[originals], "@", domain[originals])
        email1[copies] = email1[originals]

        phone1, kind1 = phones(rng, n)
        mobile, kind2 = phones(rng, n)
        phone2, _ = phones(rng, n)
        has1, has2 = rng.random(n) < 0.7, rng.random(n) < 0.5
        garbage = np.flatnonzero((has1 & (kind1 == 8)) | (has2 & (kind2 == 8)))
        if len(garbage) == 0:
            garbage = np.array([with_account[0]])
            phone1[garbage], has1[garbage] = GARBAGE_PHONES[0], True
        address = np.where(rng.random(n) < 0.5, -1, rng.integers(0, len(pools.streets), n))
        has_address = address >= 0
        address = np.maximum(address, 0)
        owners, owner_types = self.owners(rng, n, team_share=0.02)
        state = (rng.random(n) < 0.05).astype(int)
        created, modified = self.stamps(rng, n)
        customer = np.where(parent_contact >= 0, ids[np.maximum(parent_contact, 0)],
                            self.account_ids[np.maximum(account, 0)]).astype(object)
        customer[(account < 0) & (parent_contact < 0)] = None
        customer_type = np.where(parent_contact >= 0, "contact", "account").astype(object)
        customer_type[customer == None] = None  # noqa: E711 (element-wise)
        self.store("contact", {
            "contactid": ids, "firstname": first, "lastname": last, "fullname": cat(first, " ", last),
            "jobtitle": _blank(pools.pick(rng, pools.job_titles, n), rng.random(n) < 0.2),
            "_parentcustomerid_value": customer, "_parentcustomerid_value" + LOOKUP_LOGICAL_NAME: customer_type,
            "emailaddress1": email1, "emailaddress2": email2, "emailaddress3": email3,
            "telephone1": _blank(phone1, ~has1), "telephone2": _blank(phone2, rng.random(n) > 0.1),
            "mobilephone": _blank(mobile, ~has2),
            "address1_line1": _blank(pools.streets[address], ~has_address),
            "address1_city": _blank(pools.cities[address], ~has_address),
            "address1_postalcode": _blank(pools.postcodes[address], ~has_address),
            "address1_country": _blank(pools.countries[address], ~has_address),
            "birthdate": iso_date(_between(rng, EPOCH - 60 * 365 * DAY, EPOCH - 22 * 365 * DAY, n), rng.random(n) > 0.1),
            "cr7f2_linkedinurl": _blank(cat("https://www.linkedin.com/in/", pools.first_slug[first_idx], "-",
                                            pools.last_slug[last_idx], "-", digits(rng, n, 4)), rng.random(n) > 0.3),
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "statecode": state, "statuscode": state + 1, "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.contact_ids, self.contact_names, self.contact_emails = ids, cat(first, " ", last), email1
        self.contact_company = company_of
        self.contact_phone = np.where(has1, phone1, mobile)

        # Each account's primary contact: its first contact, if it has any.
        first_contact = pd.Series(np.arange(n)[account >= 0]).groupby(account[account >= 0]).first()
        primary = np.full(len(self.account_ids), None, dtype=object)
        primary[first_contact.index.to_numpy()] = ids[first_contact.to_numpy()]
        self.tables["accounts"]["_primarycontactid_value"] = pd.Series(primary, dtype="str")

        self.planted.update({
            "contacts_without_account": list(ids[orphans]),
            "contacts_with_contact_parent": list(ids[child_contacts]),
            "malformed_email_contact_ids": list(ids[malformed]),
            "duplicate_email_contact_pairs": [[ids[a], ids[b]] for a, b in zip(originals, copies)],
            "garbage_phone_contact_ids": list(ids[garbage]),
        })

    # -- opportunities and leads

    def contacts_of(self, rng: np.random.Generator, accounts: np.ndarray) -> np.ndarray:
        """A random contact working for each account (-1 where the account has none)."""
        companies = self.contact_company
        order = np.argsort(companies, kind="stable")
        sorted_companies = companies[order]
        lo = np.searchsorted(sorted_companies, accounts, "left")
        hi = np.searchsorted(sorted_companies, accounts, "right")
        pick = lo + (rng.random(len(accounts)) * (hi - lo)).astype(int)
        return np.where(hi > lo, order[np.minimum(pick, len(order) - 1)], -1)

    def opportunities_and_leads(self) -> None:
        rng = self.rng("opportunities")
        n = self.counts["opportunities"]
        ids = guids(rng, n)
        stage_count = len(self.stage_ids)
        coverage, no_stage, won_rows, lost_rows = _disjoint(rng, n, stage_count, 2, 1, 1)
        stage = rng.integers(0, stage_count, n)
        stage[rng.random(n) < 0.08] = -1
        stage[coverage] = rng.permutation(stage_count)
        stage[no_stage] = -1
        state = rng.choice(3, n, p=[0.55, 0.25, 0.2])
        state[coverage] = 0
        state[won_rows], state[lost_rows] = 1, 2
        # Won deals went through to the last stage of their process.
        last_stage = np.array([np.flatnonzero(self.stage_process == p)[-1] for p in self.stage_process])
        stage = np.where((state == 1) & (stage >= 0), last_stage[np.maximum(stage, 0)], stage)
        has_stage = stage >= 0
        safe_stage = np.maximum(stage, 0)

        by_contact = rng.random(n) < 0.15
        by_contact[coverage] = False
        account = rng.integers(0, len(self.account_ids), n)
        contact = self.contacts_of(rng, account)
        contact_customer = rng.integers(0, len(self.contact_ids), n)
        account = np.where(by_contact, self.contact_company[contact_customer], account)
        contact = np.where(by_contact, contact_customer, np.where(rng.random(n) < 0.6, contact, -1))
        customer = np.where(by_contact, self.contact_ids[contact_customer], self.account_ids[np.maximum(account, 0)])
        currency = np.where(account >= 0, self.account_currency[np.maximum(account, 0)],
                            rng.choice(len(CURRENCIES), n, p=CURRENCY_WEIGHTS))
        estimated, estimated_base, rates = self.money_in(currency, np.round(np.exp(rng.normal(10, 1.2, n)), -2))
        actual = np.where(state == 1, np.round(estimated * rng.uniform(0.8, 1.1, n), 2), np.nan)
        probability = np.where(has_stage, self.stage_probabilities[safe_stage], rng.integers(0, 101, n)).astype(float)
        probability[state == 1], probability[state == 2] = 100, 0
        probability[~has_stage & (rng.random(n) < 0.5)] = np.nan

        created, _ = self.stamps(rng, n)
        closed_on = np.minimum(created + _between(rng, 10 * DAY, 200 * DAY, n), NOW - DAY)
        closed = state > 0
        modified = np.where(closed, _between(rng, closed_on, NOW, n), _between(rng, created, NOW, n))
        expected = np.where(closed, closed_on, created + _between(rng, 30 * DAY, 240 * DAY, n))
        status = np.select([state == 1, state == 2], [3, rng.choice([4, 5], n)], rng.choice([1, 2], n, p=[0.9, 0.1]))
        topics = np.array(["Renewal", "Expansion", "New business", "Pilot", "Upgrade", "Services engagement",
                           "Multi-year agreement", "Cross-sell"])
        customer_name = np.where(by_contact, self.contact_names[contact_customer], self.account_names[np.maximum(account, 0)])
        owners, owner_types = self.owners(rng, n, team_share=0.06)
        if not (owner_types == "team").any():
            owners[-1], owner_types[-1] = self.owner_teams[0], "team"
        process = np.array([self.process_ids[p] for p in self.stage_process])[safe_stage]
        renewal = closed_on + 365 * DAY
        columns = {
            "opportunityid": ids,
            "name": cat(customer_name, " - ", topics[rng.integers(0, len(topics), n)]),
            "_customerid_value": customer,
            "_customerid_value" + LOOKUP_LOGICAL_NAME: np.where(by_contact, "contact", "account"),
            "_parentaccountid_value": _blank(self.account_ids[np.maximum(account, 0)], account < 0),
            "_parentcontactid_value": _blank(self.contact_ids[np.maximum(contact, 0)], contact < 0),
            "_transactioncurrencyid_value": self.currency_ids[currency], "exchangerate": rates,
            "estimatedvalue": estimated, "estimatedvalue_base": estimated_base,
            "actualvalue": actual, "actualvalue_base": self.base_money(actual, rates),
            "closeprobability": probability,
            "estimatedclosedate": iso_date(expected, rng.random(n) < 0.05),
            "actualclosedate": iso_date(closed_on, ~closed),
            "_processid_value": _blank(process, ~has_stage), "_stageid_value": _blank(self.stage_ids[safe_stage], ~has_stage),
            "stepname": _blank(cat(self.stage_position[safe_stage] + 1, "-", self.stage_names[safe_stage]), ~has_stage),
            "salesstage": np.where(has_stage, np.minimum(self.stage_categories[safe_stage], 3), np.nan),
            "_pricelevelid_value": _blank(self.price_list_ids[currency], rng.random(n) < 0.3),
            "_originatingleadid_value": np.full(n, None, dtype=object),
            "description": _blank(self.pools.pick(rng, self.pools.sentences, n), rng.random(n) < 0.6),
            "cr7f2_renewaldate": iso_date(renewal, ~((state == 1) & (rng.random(n) < 0.6))),
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "statecode": state, "statuscode": status, "createdon": iso(created), "modifiedon": iso(modified),
        }
        self.opportunity_ids, self.opportunity_currency = ids, currency
        self.opportunity_account, self.opportunity_contact = account, contact
        self.opportunity_created = created
        leads_for = self.leads(ids, account, contact, currency, created)
        columns["_originatingleadid_value"][leads_for[0]] = leads_for[1]
        self.store("opportunity", columns)
        self.planted.update({
            "opportunities_without_stage": list(ids[~has_stage]),
            "opportunities_by_stage": {self.stage_ids[i]: int((stage == i).sum()) for i in range(stage_count)},
            "opportunities_by_state": {label: int((state == v).sum()) for v, label in catalog.OPPORTUNITY_STATES.items()},
            "team_owned_opportunity_ids": list(ids[owner_types == "team"]),
            "opportunities_by_currency": {code: int((currency == i).sum()) for i, code in enumerate(self.currency_codes)},
        })

    def leads(self, opportunity_ids: np.ndarray, opp_account: np.ndarray, opp_contact: np.ndarray,
              opp_currency: np.ndarray, opp_created: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Open, qualified and disqualified leads; returns (opportunity rows, lead ids) of qualifications."""
        rng = self.rng("leads")
        pools = self.pools
        n = self.counts["leads"]
        ids = guids(rng, n)
        state = rng.choice(3, n, p=[0.5, 0.3, 0.2])
        state[:6] = [0, 0, 1, 1, 2, 2]
        qualified = np.flatnonzero(state == 1)
        candidates = np.flatnonzero(opp_account >= 0)
        if len(qualified) > len(candidates):  # more qualified leads than opportunities: requalify the rest as open
            state[qualified[len(candidates):]] = 0
            qualified = qualified[: len(candidates)]
        opps = rng.choice(candidates, len(qualified), replace=False)
        status = np.select([state == 0, state == 1], [rng.choice([1, 2], n), 3], rng.choice([4, 5, 6, 7], n))
        first_idx = rng.integers(0, len(pools.first), n)
        last_idx = rng.integers(0, len(pools.last), n)
        company = rng.integers(0, len(pools.companies), n)
        company_name = pools.companies[company].astype(object)
        domain = pools.company_domains[company].astype(object)
        account = np.full(n, -1)
        contact = np.full(n, -1)
        account[qualified] = opp_account[opps]
        contact[qualified] = opp_contact[opps]
        company_name[qualified] = self.account_names[account[qualified]]
        domain[qualified] = self.account_domains[account[qualified]]
        currency = rng.choice(len(CURRENCIES), n, p=CURRENCY_WEIGHTS)
        currency[qualified] = opp_currency[opps]
        amount, amount_base, rates = self.money_in(currency, np.round(np.exp(rng.normal(9.5, 1.0, n)), -2))
        created, modified = self.stamps(rng, n)
        created[qualified] = np.maximum(opp_created[opps] - _between(rng, DAY, 30 * DAY, len(qualified)), EPOCH)
        modified[qualified] = opp_created[opps]
        opportunity = np.full(n, None, dtype=object)
        opportunity[qualified] = opportunity_ids[opps]
        phone, _ = phones(rng, n)
        industry = rng.integers(1, 34, n).astype(float)
        industry[rng.random(n) < 0.4] = np.nan
        subjects = np.array(["Interested in", "Pricing request for", "Webinar follow-up:", "Trade show lead:",
                             "Demo request for", "Partner referral:"])
        products = self.product_names[self.sellable_products] if len(self.sellable_products) else self.product_names
        owners, owner_types = self.owners(rng, n, team_share=0.03)
        first, last = pools.first[first_idx], pools.last[last_idx]
        self.store("lead", {
            "leadid": ids,
            "subject": cat(subjects[rng.integers(0, len(subjects), n)], " ", products[rng.integers(0, len(products), n)]),
            "firstname": first, "lastname": last, "fullname": cat(first, " ", last), "companyname": company_name,
            "jobtitle": _blank(pools.pick(rng, pools.job_titles, n), rng.random(n) < 0.4),
            "emailaddress1": _blank(dedupe_email(cat(pools.first_slug[first_idx], ".", pools.last_slug[last_idx], "@",
                                                     domain.astype(str))), rng.random(n) < 0.1),
            "telephone1": _blank(phone, rng.random(n) < 0.3), "mobilephone": np.full(n, None),
            "websiteurl": _blank(cat("https://", domain.astype(str)), rng.random(n) < 0.5),
            "industrycode": industry, "leadsourcecode": rng.integers(1, 11, n), "leadqualitycode": rng.integers(1, 4, n),
            "_qualifyingopportunityid_value": opportunity,
            "_parentaccountid_value": _blank(self.account_ids[np.maximum(account, 0)], account < 0),
            "_parentcontactid_value": _blank(self.contact_ids[np.maximum(contact, 0)], contact < 0),
            "_transactioncurrencyid_value": self.currency_ids[currency], "exchangerate": rates,
            "estimatedamount": amount, "estimatedamount_base": amount_base,
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "statecode": state, "statuscode": status, "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.lead_ids, self.lead_emails = ids, self.tables["leads"]["emailaddress1"].to_numpy()
        self.planted.update({
            "qualified_lead_ids": list(ids[qualified]),
            "qualified_lead_opportunities": dict(zip(ids[qualified], opportunity_ids[opps])),
            "leads_by_state": {label: int((state == v).sum()) for v, label in catalog.LEAD_STATES.items()},
        })
        return opps, ids[qualified]

    def opportunity_products(self) -> None:
        """Catalogue lines, write-in lines and bundle lines (a parent line and one child per member)."""
        rng = self.rng("opportunityproducts")
        n = self.counts["opportunityproducts"]
        members = self.bundle_members
        bundles = max(1, n // 200)
        bundle_rows = bundles * (1 + len(members))
        write_ins = max(2, n // 20)
        opportunity = rng.integers(0, len(self.opportunity_ids), n)
        product = self.sellable_products[rng.integers(0, len(self.sellable_products), n)]
        parent_line = np.full(n, -1)
        # Bundle blocks first: parent line, then its member lines on the same opportunity.
        block = np.arange(bundle_rows) // (1 + len(members))
        position = np.arange(bundle_rows) % (1 + len(members))
        opportunity[:bundle_rows] = opportunity[block * (1 + len(members))]
        product[:bundle_rows] = np.where(position == 0, 0, members[np.maximum(position - 1, 0)])
        parent_line[:bundle_rows] = np.where(position == 0, -1, block * (1 + len(members)))
        write_in = np.zeros(n, dtype=bool)
        write_in[bundle_rows: bundle_rows + write_ins] = True
        ids = guids(rng, n)
        currency = self.opportunity_currency[opportunity]
        quantity = np.where(parent_line >= 0, 1.0, rng.integers(1, 25, n).astype(float))
        write_in_names = np.array(["Custom integration work", "On-site training (2 days)", "Data migration services",
                                   "Extended warranty", "Travel expenses", "Rush delivery surcharge"])
        description = np.full(n, None, dtype=object)
        description[write_in] = write_in_names[rng.integers(0, len(write_in_names), write_in.sum())]
        list_price, _, rates = self.money_in(currency, self.product_prices[product])
        custom_price = np.round(np.exp(rng.normal(7, 1, n)) * rates, 2)
        price_overridden = write_in | (rng.random(n) < 0.1)
        unit = np.where(price_overridden, custom_price, list_price)
        unit[parent_line >= 0] = 0.0  # members are priced inside the bundle line
        base = np.round(unit * quantity, 2)
        discount = np.where(rng.random(n) < 0.2, np.round(base * rng.uniform(0, 0.15, n), 2), 0.0)
        tax = np.where(rng.random(n) < 0.3, np.round((base - discount) * 0.08, 2), 0.0)
        extended = np.round(base - discount + tax, 2)
        line_number = pd.Series(opportunity).groupby(opportunity).cumcount().to_numpy() + 1
        created = np.maximum(self.opportunity_created[opportunity] + _between(rng, 0, 10 * DAY, n), EPOCH)
        modified = _between(rng, created, NOW, n)
        product_id = _blank(self.product_ids[product], write_in)
        self.store("opportunityproduct", {
            "opportunityproductid": ids,
            "opportunityproductname": np.where(write_in, description, self.product_names[product]),
            "_opportunityid_value": self.opportunity_ids[opportunity], "_productid_value": product_id,
            "productdescription": description, "isproductoverridden": write_in, "ispriceoverridden": price_overridden,
            "quantity": quantity,
            "priceperunit": unit, "priceperunit_base": self.base_money(unit, rates),
            "baseamount": base, "baseamount_base": self.base_money(base, rates),
            "manualdiscountamount": discount, "manualdiscountamount_base": self.base_money(discount, rates),
            "tax": tax, "tax_base": self.base_money(tax, rates),
            "extendedamount": extended, "extendedamount_base": self.base_money(extended, rates),
            "lineitemnumber": line_number,
            "_parentbundleidref_value": _blank(ids[np.maximum(parent_line, 0)], parent_line < 0),
            "_transactioncurrencyid_value": self.currency_ids[currency], "exchangerate": rates,
            "createdon": iso(created), "modifiedon": iso(modified),
        })
        self.planted.update({
            "write_in_line_ids": list(ids[write_in]),
            "bundle_line_ids": list(ids[:bundle_rows][position == 0]),
            "bundle_member_line_ids": list(ids[:bundle_rows][position > 0]),
        })

    # -- activities

    def activities(self) -> None:
        total = self.counts["activities"]
        sizes = {kind: max(4, int(total * share)) for kind, share in ACTIVITY_SHARES.items()}
        sizes["email"] += total - sum(sizes.values())
        shared_frames, party_parts = [], []
        for kind, n in sizes.items():
            frame, parties = self.activity_type(kind, n)
            shared_frames.append(frame)
            party_parts.extend(parties)
        pointer_columns = [a.column for a in catalog.ENTITIES["activitypointer"].attributes if a.logical_name != "versionnumber"]
        pointer_columns.insert(pointer_columns.index("_regardingobjectid_value") + 1, "_regardingobjectid_value" + LOOKUP_LOGICAL_NAME)
        pointer_columns.insert(pointer_columns.index("_ownerid_value") + 1, "_ownerid_value" + LOOKUP_LOGICAL_NAME)
        pointers = pd.concat([self.tables[catalog.ACTIVITY_TYPES[k][0]][pointer_columns + ["versionnumber"]]
                              for k in sizes], ignore_index=True)
        self.tables["activitypointers"] = pointers
        self.activity_parties(party_parts)
        self.planted["activities_by_type"] = {kind: n for kind, n in sizes.items()}

    def activity_type(self, kind: str, n: int) -> tuple[pd.DataFrame, list[dict[str, np.ndarray]]]:
        rng = self.rng(f"activities/{kind}")
        ids = guids(rng, n)
        regarding_kind = rng.choice(5, n, p=[0.35, 0.25, 0.25, 0.1, 0.05])
        regarding_kind[:4] = np.arange(4)
        targets = (self.account_ids, self.contact_ids, self.opportunity_ids, self.lead_ids)
        regarding = np.full(n, None, dtype=object)
        regarding_type = np.full(n, None, dtype=object)
        for index, (target, pool) in enumerate(zip(catalog.REGARDING_TARGETS, targets)):
            rows = np.flatnonzero(regarding_kind == index)
            regarding[rows] = pool[rng.integers(0, len(pool), len(rows))]
            regarding_type[rows] = target
        start = _between(rng, EPOCH + 30 * DAY, NOW + 60 * DAY, n)
        duration = rng.choice([15, 30, 45, 60, 90, 120], n)
        end = start + duration * 60
        past = end < NOW
        canceled = rng.random(n) < 0.08
        state = np.where(canceled, 2, np.where(past & (rng.random(n) < 0.9), 1, 0))
        if kind == "appointment":
            state = np.where((state == 0) & ~past, 3, state)
        completed = state == 1
        status_for = {
            "phonecall": {0: [1], 1: [2, 4], 2: [3]},
            "email": {0: [1, 8], 1: [3, 4, 2], 2: [5]},
            "task": {0: [2, 3, 4, 7], 1: [5], 2: [6]},
            "appointment": {0: [1, 2], 1: [3], 2: [4], 3: [5, 6]},
        }[kind]
        status = np.zeros(n, dtype=int)
        for value, options in status_for.items():
            rows = np.flatnonzero(state == value)
            status[rows] = rng.choice(options, len(rows))
        subjects = {
            "phonecall": ["Discovery call", "Follow-up call", "Left voicemail", "Pricing call", "Check-in call"],
            "email": ["Re: Proposal", "Pricing question", "Contract draft attached", "Meeting recap", "Intro"],
            "task": ["Send contract", "Prepare quote", "Update forecast", "Book demo", "Chase signature"],
            "appointment": ["Quarterly business review", "Product demo", "Lunch meeting", "Kick-off", "Workshop"],
        }[kind]
        created = np.minimum(start - _between(rng, DAY, 20 * DAY, n), NOW - DAY)
        modified = np.maximum(np.minimum(np.where(completed, end, created + DAY), NOW), created)
        owners, owner_types = self.owners(rng, n, team_share=0.03)
        undated_start = (rng.random(n) < 0.5) if kind == "task" else None  # tasks often have a due date only
        columns: dict[str, Any] = {
            "activityid": ids, "activitytypecode": np.full(n, kind),
            "subject": np.array(subjects)[rng.integers(0, len(subjects), n)],
            "description": _blank(self.pools.pick(rng, self.pools.sentences, n), rng.random(n) < 0.4),
            "scheduledstart": iso(start, undated_start),
            "scheduledend": iso(end), "actualstart": iso(start, ~completed), "actualend": iso(end, ~completed),
            "actualdurationminutes": np.where(completed, duration, np.nan), "scheduleddurationminutes": duration,
            "prioritycode": rng.choice(3, n, p=[0.2, 0.65, 0.15]),
            "_regardingobjectid_value": regarding, "_regardingobjectid_value" + LOOKUP_LOGICAL_NAME: regarding_type,
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "statecode": state, "statuscode": status, "createdon": iso(created), "modifiedon": iso(modified),
        }
        parties = self.parties_for(rng, kind, ids, owners, owner_types, columns)
        self.store(kind, columns)
        return self.tables[catalog.ACTIVITY_TYPES[kind][0]], parties

    def parties_for(self, rng: np.random.Generator, kind: str, ids: np.ndarray, owners: np.ndarray,
                    owner_types: np.ndarray, columns: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        """Activity parties per type (email From/To/Cc/Bcc, call From/To, meeting organizer and
        attendees, task owner), adding the type-specific columns to `columns` on the way."""
        n = len(ids)
        user = np.where(owner_types == "systemuser", owners, self.active_user_ids[rng.integers(0, len(self.active_user_ids), n)])
        user_index = pd.Index(self.user_ids).get_indexer(user.astype(str))
        user_email = self.user_emails[user_index]
        contact = rng.integers(0, len(self.contact_ids), n)
        contact_email = self.contact_emails[contact]
        parts: list[dict[str, np.ndarray]] = []

        def add(rows: np.ndarray, mask: int, party: np.ndarray, party_type: np.ndarray | str, address: np.ndarray) -> None:
            parts.append({"activity": ids[rows], "mask": np.full(len(rows), mask), "party": party,
                          "type": np.broadcast_to(np.asarray(party_type, dtype=object), (len(rows),)).copy(),
                          "address": address})

        everyone = np.arange(n)
        if kind == "phonecall":
            outgoing = rng.random(n) < 0.7
            number = self.contact_phone[contact]
            columns["phonenumber"] = number
            columns["directioncode"] = outgoing
            contact_id = self.contact_ids[contact]
            add(everyone, 1, np.where(outgoing, user, contact_id), np.where(outgoing, "systemuser", "contact"),
                np.where(outgoing, user_email, number))
            add(everyone, 2, np.where(outgoing, contact_id, user), np.where(outgoing, "contact", "systemuser"),
                np.where(outgoing, number, user_email))
        elif kind == "email":
            outgoing = rng.random(n) < 0.65
            sender = np.where(outgoing, user_email, contact_email)
            columns["sender"] = sender
            columns["directioncode"] = outgoing
            unresolved = rng.random(n) < 0.1
            unresolved[:2] = True
            stranger = cat("someone", digits(rng, n, 3), "@unknown-", digits(rng, n, 2), ".example")
            to_address = np.where(outgoing, np.where(unresolved, stranger, contact_email), user_email)
            columns["torecipients"] = to_address
            add(everyone, 1, np.where(outgoing, user, self.contact_ids[contact]), np.where(outgoing, "systemuser", "contact"), sender)
            to_party = np.where(outgoing, np.where(unresolved, None, self.contact_ids[contact]), user)
            to_type = np.where(outgoing, np.where(unresolved, None, "contact"), "systemuser")
            add(everyone, 2, to_party, to_type, to_address)
            cc = np.flatnonzero(rng.random(n) < 0.25)
            cc_contact = rng.integers(0, len(self.contact_ids), len(cc))
            add(cc, 3, self.contact_ids[cc_contact], "contact", self.contact_emails[cc_contact])
            bcc = np.flatnonzero(rng.random(n) < 0.05)
            add(bcc, 4, user[bcc], "systemuser", user_email[bcc])
            to_lead = np.flatnonzero(rng.random(n) < 0.05)
            lead = rng.integers(0, len(self.lead_ids), len(to_lead))
            add(to_lead, 2, self.lead_ids[lead], "lead", self.lead_emails[lead])
            self.planted.setdefault("unresolved_party_count", 0)
            self.planted["unresolved_party_count"] += int((outgoing & unresolved).sum())
        elif kind == "appointment":
            places = np.array(["Microsoft Teams meeting", "Customer office", "Our office, room 4.12", "Zoom"])
            location = self.pools.pick(rng, np.concatenate([places, self.pools.cities[:20]]), n)
            columns["location"] = _blank(location, rng.random(n) < 0.2)
            columns["isalldayevent"] = rng.random(n) < 0.05
            add(everyone, 7, user, "systemuser", user_email)
            add(everyone, 5, self.contact_ids[contact], "contact", contact_email)
            second = np.flatnonzero(rng.random(n) < 0.4)
            other = rng.integers(0, len(self.contact_ids), len(second))
            add(second, 5, self.contact_ids[other], "contact", self.contact_emails[other])
            optional = np.flatnonzero(rng.random(n) < 0.3)
            add(optional, 6, np.full(len(optional), None, dtype=object), np.full(len(optional), None, dtype=object),
                cat("guest", digits(rng, len(optional), 3), "@partner.example"))
        else:  # task
            columns["percentcomplete"] = np.where(columns["statecode"] == 1, 100, rng.choice([0, 25, 50, 75], n))
            add(everyone, 9, user, "systemuser", user_email)
        return parts

    def activity_parties(self, parts: list[dict[str, np.ndarray]]) -> None:
        rng = self.rng("activityparties")
        merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        n = len(merged["activity"])
        stamps = self.tables["activitypointers"].set_index("activityid")["createdon"]
        created = stamps.reindex(merged["activity"]).to_numpy()
        party = merged["party"].astype(object)
        party_type = merged["type"].astype(object)
        missing = pd.isna(party)
        party[missing], party_type[missing] = None, None
        self.store("activityparty", {
            "activitypartyid": guids(rng, n), "_activityid_value": merged["activity"],
            "_partyid_value": party, "_partyid_value" + LOOKUP_LOGICAL_NAME: party_type,
            "addressused": _blank(merged["address"].astype(str), pd.isna(merged["address"])),
            "participationtypemask": merged["mask"], "createdon": created, "modifiedon": created,
        })
        self.planted["unresolved_party_ids"] = list(self.tables["activityparties"]["activitypartyid"][missing])

    # -- notes and attachments

    def annotations(self) -> None:
        """Notes on accounts, contacts, deals and leads; some carry files, some with hostile names,
        one larger than Pipedrive accepts. Bodies are produced lazily and deterministically."""
        rng = self.rng("annotations")
        n = self.counts["annotations"]
        ids = guids(rng, n)
        parent_kind = rng.choice(4, n, p=[0.4, 0.25, 0.25, 0.1])
        targets = (self.account_ids, self.contact_ids, self.opportunity_ids, self.lead_ids)
        parent = np.empty(n, dtype=object)
        for index, pool in enumerate(targets):
            rows = np.flatnonzero(parent_kind == index)
            parent[rows] = pool[rng.integers(0, len(pool), len(rows))]
        parent_type = np.array(catalog.REGARDING_TARGETS)[parent_kind]
        oversize, unsafe = _disjoint(rng, n, 1, len(UNSAFE_FILENAMES))
        document = rng.random(n) < 0.4
        document[oversize] = document[unsafe] = True
        mime = rng.integers(0, len(MIME_TYPES), n)
        mime[unsafe] = 5 + (np.arange(len(unsafe)) % 2)
        stems = np.array(["Contract", "Signed NDA", "Quote", "Proposal", "Meeting notes", "Invoice", "Price sheet",
                          "Requirements", "Screenshot", "Org chart"])
        extensions = np.array([m[1] for m in MIME_TYPES])
        filename = cat(stems[rng.integers(0, len(stems), n)], "_", rng.integers(2019, 2026, n), ".", extensions[mime]).astype(object)
        filename[unsafe] = UNSAFE_FILENAMES
        size = np.clip(np.exp(rng.normal(11.5, 1.5, n)), 200, 20 * 1024 * 1024).astype(np.int64)
        size[oversize] = PipedrivePlan().max_file_size + 1024 * 1024
        size = np.where(document, size, 0)
        subjects = np.array(["Call notes", "Contract attached", "Customer feedback", "Pricing discussion", "Next steps",
                             "Internal: escalation", "Meeting minutes", None], dtype=object)
        created, modified = self.stamps(rng, n)
        owners, owner_types = self.owners(rng, n, team_share=0.02)
        mime_names = np.array([m[0] for m in MIME_TYPES])
        self.store("annotation", {
            "annotationid": ids, "subject": subjects[rng.integers(0, len(subjects), n)],
            "notetext": _blank(self.pools.pick(rng, self.pools.sentences, n), document & (rng.random(n) < 0.3)),
            "isdocument": document, "filename": _blank(filename, ~document),
            "mimetype": _blank(mime_names[mime], ~document), "filesize": size,
            "objecttypecode": parent_type, "_objectid_value": parent,
            "_objectid_value" + LOOKUP_LOGICAL_NAME: parent_type,
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "createdon": iso(created), "modifiedon": iso(modified),
        })
        for row in np.flatnonzero(document):
            header = MIME_TYPES[mime[row]][2]
            self.attachments[ids[row]] = Attachment(int(size[row]), functools.partial(
                attachment_body, f"{self.seed}/{ids[row]}", int(size[row]), header, MIME_TYPES[mime[row]][0]))
        self.planted.update({
            "oversize_attachment_ids": list(ids[oversize]),
            "unsafe_filename_annotation_ids": list(ids[unsafe]),
            "annotations_with_attachment": int(document.sum()),
            "annotations_without_attachment": int((~document).sum()),
        })

    # -- the custom table

    def projects(self) -> None:
        rng = self.rng("cr7f2_projects")
        n = max(5, len(self.account_ids) // 3)
        ids = guids(rng, n)
        account = rng.integers(0, len(self.account_ids), n)
        has_account = rng.random(n) < 0.9
        has_account[:3] = True
        kinds = np.array(["CRM rollout", "ERP integration", "Data cleanup", "Support renewal", "Training programme",
                          "Website relaunch"])
        currency = self.account_currency[account]
        budget, budget_base, rates = self.money_in(currency, np.round(np.exp(rng.normal(10.5, 0.8, n)), -2))
        owners, owner_types = self.owners(rng, n)
        created = np.maximum(self.account_created[account], EPOCH) + _between(rng, DAY, 200 * DAY, n)
        created = np.minimum(created, NOW - 2 * DAY)
        modified = _between(rng, created, NOW, n)
        state = (rng.random(n) < 0.1).astype(int)
        self.store("cr7f2_project", {
            "cr7f2_projectid": ids, "cr7f2_name": cat(self.account_names[account], " – ", kinds[rng.integers(0, len(kinds), n)]),
            "_cr7f2_accountid_value": _blank(self.account_ids[account], ~has_account),
            "cr7f2_budget": budget, "cr7f2_budget_base": budget_base,
            "_transactioncurrencyid_value": self.currency_ids[currency], "exchangerate": rates,
            "cr7f2_startdate": iso_date(created + 7 * DAY),
            "cr7f2_projectstatus": rng.choice(list(catalog.PROJECT_STATUSES), n),
            "cr7f2_ishighpriority": rng.random(n) < 0.2, "cr7f2_estimatedhours": rng.integers(20, 2000, n),
            "_ownerid_value": owners, "_ownerid_value" + LOOKUP_LOGICAL_NAME: owner_types,
            "statecode": state, "statuscode": state + 1, "createdon": iso(created), "modifiedon": iso(modified),
        })
        # N:N: every project with its own account, plus one or two partner accounts.
        extra = rng.integers(0, 3, n)
        pairs = pd.DataFrame({
            "project": np.concatenate([np.flatnonzero(has_account), np.repeat(np.arange(n), extra)]),
            "account": np.concatenate([account[has_account], rng.integers(0, len(self.account_ids), extra.sum())]),
        }).drop_duplicates()
        k = len(pairs)
        self.tables["cr7f2_project_accountset"] = pd.DataFrame({
            "cr7f2_project_accountid": pd.Series(guids(self.rng("cr7f2_project_accountset"), k), dtype="str"),
            "cr7f2_projectid": pd.Series(ids[pairs["project"].to_numpy()], dtype="str"),
            "accountid": pd.Series(self.account_ids[pairs["account"].to_numpy()], dtype="str"),
            "versionnumber": pd.array(self._version + np.arange(k), dtype="Int64"),
        })
        self._version += k
        self.planted["project_account_links"] = k


def plain(value: Any) -> Any:
    """numpy scalars and arrays inside `planted` -> plain Python values, so it prints and serialises as JSON."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _served_elsewhere(entity: EntityDef, attribute: str) -> bool:
    """Columns that exist in the schema but not in the table (note bodies come from `attachments`)."""
    return entity.logical_name == "annotation" and attribute == "documentbody"


def attachment_body(key: str, size: int, header: bytes, mime_type: str) -> bytes:
    """The deterministic bytes of one attachment: a plausible file header, then filler."""
    if mime_type.startswith("text/"):
        line = f"{key},generated sandbox attachment,row\n".encode()
        return (line * (size // len(line) + 1))[:size]
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    return (header + rng.bytes(max(size - len(header), 0)))[:size]


# --- Pipedrive -------------------------------------------------------------------------------


class _PipedriveSeeder:
    """The Pipedrive company the migration lands in: users for most Dynamics owners, an admin
    whose token the tool uses, default pipeline, and optionally records that already exist."""

    def __init__(self, generator: _Generator, existing: bool) -> None:
        self.g = generator
        self.existing = existing
        self.rng = generator.rng("pipedrive")
        self.planted: dict[str, Any] = {}

    def seed(self) -> PipedriveSeed:
        users = self.users()
        tokens = [self.rng.bytes(20).hex() for _ in range(3)]
        seed = PipedriveSeed(
            company_domain="sandbox", users=users,
            api_tokens={tokens[0]: users[0]["id"], tokens[1]: users[1]["id"], tokens[2]: users[2]["id"]},
            currencies=self.currencies(), activity_types=self.activity_types(),
            pipelines=[{"id": 1, "name": "Pipeline", "order_nr": 1, "is_deleted": False,
                        "is_deal_probability_enabled": False, "add_time": "2023-01-10T09:00:00Z",
                        "update_time": "2023-01-10T09:00:00Z"}],
            stages=[{"id": i + 1, "order_nr": i + 1, "name": name, "is_deleted": False, "deal_probability": 100,
                     "pipeline_id": 1, "is_deal_rot_enabled": False, "days_to_rotten": None,
                     "add_time": "2023-01-10T09:00:00Z", "update_time": "2023-01-10T09:00:00Z"}
                    for i, name in enumerate(PIPEDRIVE_DEFAULT_STAGES)],
            plan=PipedrivePlan(seats=max(10, len(users))),
        )
        if self.existing:
            seed.organizations, seed.persons, seed.deals = self.existing_records(users)
        seed.planted = plain(self.planted)
        return seed

    def users(self) -> list[dict[str, Any]]:
        g = self.g
        stamp = "2023-01-10 09:00:00"
        admin = {"id": 1000001, "name": "Sandbox Admin", "email": "admin@sandbox.example.com", "is_admin": 1, "is_you": True}
        matched = [{"id": 1000002 + i, "name": str(g.user_names[u]), "email": str(g.user_emails[u]), "is_admin": 0,
                    "is_you": False} for i, u in enumerate(g.matched_user_index)]
        users = []
        for user in [admin, *matched]:
            users.append({
                **user, "active_flag": True, "activated": True, "is_deleted": False, "role_id": 1,
                "access": [{"app": "sales", "admin": bool(user["is_admin"]), "permission_set_id": "sales-regular"}],
                "default_currency": "USD", "locale": "en_US", "lang": 1, "phone": None,
                "timezone_name": "Europe/London", "timezone_offset": "+00:00", "icon_url": None,
                "created": stamp, "modified": stamp, "last_login": "2025-05-30 08:00:00",
                "has_created_company": user["is_admin"] == 1,
            })
        self.planted["admin_user_id"] = admin["id"]
        self.planted["user_ids_by_dynamics_user"] = {str(g.user_ids[u]): 1000002 + i for i, u in enumerate(g.matched_user_index)}
        return users

    def currencies(self) -> list[dict[str, Any]]:
        rows = [("USD", "US Dollar", 2, "$"), ("EUR", "Euro", 2, "€"), ("GBP", "Pound Sterling", 2, "£"),
                ("JPY", "Japanese Yen", 0, "¥"), ("CHF", "Swiss Franc", 2, "CHF"), ("CAD", "Canadian Dollar", 2, "CA$"),
                ("AUD", "Australian Dollar", 2, "A$"), ("SEK", "Swedish Krona", 2, "kr")]
        return [{"id": i + 1, "code": code, "name": name, "decimal_points": points, "symbol": symbol,
                 "active_flag": True, "is_custom_flag": False} for i, (code, name, points, symbol) in enumerate(rows)]

    def activity_types(self) -> list[dict[str, Any]]:
        rows = [("Call", "call", "call"), ("Meeting", "meeting", "meeting"), ("Task", "task", "task"),
                ("Deadline", "deadline", "deadline"), ("Email", "email", "email"), ("Lunch", "lunch", "lunch")]
        return [{"id": i + 1, "order_nr": i + 1, "name": name, "key_string": key, "icon_key": icon, "color": None,
                 "active_flag": True, "is_custom_flag": False, "add_time": "2023-01-10 09:00:00",
                 "update_time": None} for i, (name, key, icon) in enumerate(rows)]

    def existing_records(self, users: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Organizations named like some accounts and persons sharing some contacts' emails (the
        migration must match, not duplicate, them), plus unrelated records it must leave alone."""
        g, rng = self.g, self.rng
        stamp = "2024-11-02T10:15:00Z"
        owner = users[0]["id"]
        matched_accounts = rng.choice(np.arange(7, len(g.account_ids)), 3, replace=False)
        organizations = [self.organization(2001 + i, str(g.account_names[a]), owner, stamp)
                         for i, a in enumerate(matched_accounts)]
        organizations.append(self.organization(2901, "Pipedrive-only Prospect Ltd", owner, stamp))
        planted = {*g.planted["malformed_email_contact_ids"], *g.planted["contacts_without_account"],
                   *(c for pair in g.planted["duplicate_email_contact_pairs"] for c in pair)}
        with_email = np.flatnonzero(pd.notna(g.contact_emails) & ~np.isin(g.contact_ids, list(planted)))
        chosen = rng.choice(with_email, 3, replace=False)
        persons = [self.person(3001 + i, str(g.contact_names[c]), str(g.contact_emails[c]), owner, stamp)
                   for i, c in enumerate(chosen)]
        persons.append(self.person(3901, "Walk-in Visitor", "visitor@pipedrive-only.example", owner, stamp))
        deals = [{"id": 4901, "title": "Existing Pipedrive deal", "owner_id": owner, "person_id": 3901, "org_id": 2901,
                  "pipeline_id": 1, "stage_id": 2, "value": 5000, "currency": "USD", "status": "open",
                  "probability": None, "add_time": stamp, "update_time": stamp, "stage_change_time": stamp,
                  "is_deleted": False, "visible_to": 3, "won_time": None, "lost_time": None, "close_time": None,
                  "lost_reason": None, "expected_close_date": None, "label_ids": [], "custom_fields": {}}]
        self.planted.update({
            "existing_org_ids_by_account": {str(g.account_ids[a]): o["id"] for a, o in zip(matched_accounts, organizations)},
            "existing_person_ids_by_contact": {str(g.contact_ids[c]): p["id"] for c, p in zip(chosen, persons)},
            "unrelated_org_ids": [2901], "unrelated_person_ids": [3901], "unrelated_deal_ids": [4901],
        })
        return organizations, persons, deals

    @staticmethod
    def organization(org_id: int, name: str, owner: int, stamp: str) -> dict[str, Any]:
        return {"id": org_id, "name": name, "owner_id": owner, "add_time": stamp, "update_time": stamp,
                "is_deleted": False, "visible_to": 3, "address": None, "label_ids": [], "website": None,
                "linkedin": None, "industry": None, "annual_revenue": None, "employee_count": None,
                "custom_fields": {}}

    @staticmethod
    def person(person_id: int, name: str, email: str, owner: int, stamp: str) -> dict[str, Any]:
        first, _, last = name.partition(" ")
        return {"id": person_id, "name": name, "first_name": first, "last_name": last, "owner_id": owner,
                "org_id": None, "add_time": stamp, "update_time": stamp, "is_deleted": False, "visible_to": 3,
                "emails": [{"value": email, "primary": True, "label": "work"}], "phones": [],
                "label_ids": [], "picture_id": None, "custom_fields": {}}
