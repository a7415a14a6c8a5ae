"""The state of one simulated Pipedrive company and the controls tests use on it.

`app.state.simulator` is an instance; the `/_sandbox/...` endpoints call the same methods
for tests and demos that run the sandbox in another process.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import random
import threading
import uuid
from typing import Any

from migration_pipeline.sandbox.dataset import PipedrivePlan, PipedriveSeed
from migration_pipeline.sandbox.pipedrive.costs import CostTable
from migration_pipeline.sandbox.pipedrive.fields import (
    CREATABLE_TYPES,
    ENTITIES,
    LEAD_SYSTEM_FIELDS,
    OPTION_TYPES,
    SYSTEM_FIELDS,
    FieldDef,
    References,
)
from migration_pipeline.sandbox.pipedrive.options import PipedriveOptions
from migration_pipeline.sandbox.pipedrive.ratelimit import RateLimiter
from migration_pipeline.sandbox.pipedrive.responses import ApiError
from migration_pipeline.sandbox.pipedrive.store import OBJECTS, Store

DEFAULT_LEAD_LABELS = (("Hot", "red"), ("Warm", "yellow"), ("Cold", "blue"))
LEAD_SOURCES = ("API", "Manually created", "Import", "Web forms", "Chatbot", "Live chat", "Prospector")
SEED_OBJECTS = ("pipelines", "stages", "organizations", "persons", "deals", "products")


class Simulator:
    def __init__(self, seed: PipedriveSeed, options: PipedriveOptions) -> None:
        self.seed = seed
        self.options = options
        self.plan: PipedrivePlan = dataclasses.replace(seed.plan)
        self.rng = random.Random(options.random_seed)
        self.lock = threading.RLock()  # the loopback server runs one event loop; controls may come from tests
        self.costs = CostTable.from_specs()
        self.limiter = RateLimiter(self.plan, self._clock, options.burst_window_s, options.penalty_window_s,
                                   options.penalty_factor, options.block_seconds)
        self.store = Store()
        self.users = {user["id"]: copy.deepcopy(user) for user in seed.users}
        self.tokens = dict(seed.api_tokens)
        self.currencies = {currency["code"]: copy.deepcopy(currency) for currency in seed.currencies}
        self.activity_types = [copy.deepcopy(kind) for kind in seed.activity_types]
        self.files: dict[int, bytes] = {}
        self.requests_served = 0
        self._field_id = 0
        self._option_id = 0
        self.fields: dict[str, dict[str, FieldDef]] = {entity: {} for entity in ENTITIES}
        for entity, definitions in SYSTEM_FIELDS.items():
            for code, name, kind in definitions:
                self._add_field(entity, code, name, kind, is_custom=False)
        for name in SEED_OBJECTS:
            for record in getattr(seed, name):
                self.store.add(name, self._seed_record(name, copy.deepcopy(record)))
        for name, color in DEFAULT_LEAD_LABELS:
            stamp = self.ts_lead()
            label_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            self.store.add("lead_labels", {"id": label_id, "name": name, "color": color,
                                           "add_time": stamp, "update_time": stamp})

    def _clock(self) -> float:
        return self.options.clock()

    def _seed_record(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        stamp = self.ts_v2()
        record.setdefault("is_deleted", False)
        record.setdefault("add_time", stamp)
        record.setdefault("update_time", stamp)
        if name in ("organizations", "persons", "deals", "products"):
            record.setdefault("custom_fields", {})
        return record

    # -- time ---------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC)

    def ts_v2(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def ts_v1(self) -> str:
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    def ts_lead(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.now().microsecond // 1000:03d}Z"

    # -- lookups ------------------------------------------------------------------------------
    def user_for_token(self, token: str | None) -> int | None:
        return self.tokens.get(token) if token else None

    def active_user(self, user_id: int) -> bool:
        user = self.users.get(user_id)
        return user is not None and bool(user.get("active_flag", True)) and not user.get("is_deleted", False)

    def refs(self) -> References:
        return References(
            active_user=self.active_user,
            active_org=lambda i: self.store.live("organizations", i) is not None,
            active_person=lambda i: self.store.live("persons", i) is not None,
            currency=lambda code: code in self.currencies,
        )

    def custom_fields(self, entity: str) -> dict[str, FieldDef]:
        return {code: f for code, f in self.fields[entity].items() if f.is_custom_field and not f.is_deleted}

    def field_values(self, entity: str, stored: dict[str, Any]) -> dict[str, Any]:
        """Every live custom field of the entity, null where the record has no value."""
        return {code: stored.get(code) for code in self.custom_fields(entity)}

    # -- fields -------------------------------------------------------------------------------
    def _add_field(self, entity: str, code: str, name: str, kind: str, is_custom: bool,
                   options: list[dict[str, Any]] | None = None, **extra: Any) -> FieldDef:
        self._field_id += 1
        definition = FieldDef(id=self._field_id, entity=entity, field_code=code, field_name=name, field_type=kind,
                              is_custom_field=is_custom, add_time=self.ts_v2(), options=options, **extra)
        self.fields[entity][code] = definition
        return definition

    def new_options(self, labels: list[str]) -> list[dict[str, Any]]:
        stamp = self.ts_v2()
        out = []
        for label in labels:
            self._option_id += 1
            out.append({"id": self._option_id, "label": label, "color": None, "add_time": stamp, "update_time": None})
        return out

    def custom_field_count(self) -> int:
        return sum(len(self.custom_fields(entity)) for entity in ENTITIES)

    def create_field(self, entity: str, name: str, kind: str, option_labels: list[str] | None,
                     **extra: Any) -> FieldDef:
        if kind not in CREATABLE_TYPES:
            raise ApiError(400, f"Validation failed: field_type: Field type '{kind}' cannot be created",
                           "ERR_SCHEMA_VALIDATION_FAILED")
        if kind in OPTION_TYPES and not option_labels:
            raise ApiError(400, "Validation failed: options: Options are required for enum and set fields",
                           "ERR_SCHEMA_VALIDATION_FAILED")
        if kind not in OPTION_TYPES and option_labels is not None:
            raise ApiError(400, "Validation failed: options: Options are only allowed for enum and set fields",
                           "ERR_SCHEMA_VALIDATION_FAILED")
        if self.custom_field_count() >= self.plan.custom_field_cap:
            raise ApiError(403, "Couldn't add the custom field. Custom fields limit reached.",
                           "feature_capping_custom_fields_limit")
        code = f"{self.rng.getrandbits(160):040x}"
        options = self.new_options(option_labels) if option_labels else None
        return self._add_field(entity, code, name, kind, is_custom=True, options=options, **extra)

    def lead_fields(self) -> list[FieldDef]:
        """`/v1/leadFields`: the lead's own fields, then the deal custom fields leads inherit."""
        system = [FieldDef(id=index + 1, entity="lead", field_code=code, field_name=name, field_type=kind,
                           is_custom_field=False, add_time=self.ts_v2())
                  for index, (code, name, kind) in enumerate(LEAD_SYSTEM_FIELDS)]
        return system + list(self.custom_fields("deal").values())

    # -- caps ---------------------------------------------------------------------------------
    def deals_and_leads_count(self) -> int:
        deals = sum(1 for deal in self.store.rows("deals") if not deal.get("is_archived"))
        leads = sum(1 for lead in self.store.rows("leads") if not lead.get("is_archived"))
        return deals + leads

    def check_deal_cap(self, what: str) -> None:
        if self.deals_and_leads_count() >= self.plan.deals_and_leads_cap:
            raise ApiError(403, f"Couldn't add the {what}. Deals and leads limit reached.",
                           "feature_capping_deals_limit")

    # -- controls (also served under /_sandbox) -----------------------------------------------
    def reset_budget(self) -> None:
        with self.lock:
            self.limiter.reset_budget()

    def reset_rate_limits(self) -> None:
        with self.lock:
            self.limiter.reset_bursts()

    def set_plan(self, **changes: Any) -> PipedrivePlan:
        with self.lock:
            for key, value in changes.items():
                if not hasattr(self.plan, key):
                    raise KeyError(key)
                setattr(self.plan, key, value)
            return self.plan

    def set_options(self, **changes: Any) -> PipedriveOptions:
        with self.lock:
            for key in changes:
                if key not in {"latency_ms", "fault_rate", "applied_fault_share"}:
                    raise KeyError(key)
            for key, value in changes.items():
                setattr(self.options, key, value)
            return self.options

    def change_record(self, table: str, record_id: Any, changes: dict[str, Any]) -> dict[str, Any]:
        """Edit a record behind the client's back, as a Pipedrive user would in the UI."""
        with self.lock:
            record = self.store.get(table, record_id)
            if record is None:
                raise KeyError(f"{table} {record_id}")
            custom = changes.pop("custom_fields", None)
            record.update(changes)
            if custom:
                record.setdefault("custom_fields", {}).update(custom)
            if "update_time" in record:
                record["update_time"] = self.ts_lead() if table == "leads" else (
                    self.ts_v1() if table in ("notes", "files") else self.ts_v2())
            return copy.deepcopy(record)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return self.store.snapshot()

    def usage(self) -> dict[str, Any]:
        with self.lock:
            return {
                "tokens_used": self.limiter.tokens_used,
                "daily_token_budget": self.plan.daily_token_budget,
                "daily_remaining": self.limiter.daily_remaining(),
                "requests_served": self.requests_served,
                "custom_fields": self.custom_field_count(),
                "deals_and_leads": self.deals_and_leads_count(),
                "counts": {name: len(self.store.rows(name)) for name in OBJECTS},
            }
