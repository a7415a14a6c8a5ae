"""Staged rows -> Pipedrive v2 request bodies.

The loader sends these bodies and the diff compares what Pipedrive holds against the same
bodies, so "what we meant to write" is defined once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

CUSTOM_PREFIX = "custom:"


def plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, NaN/NA and empty parts dropped to None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        cleaned = {key: plain(item) for key, item in value.items()}
        cleaned = {key: item for key, item in cleaned.items() if item is not None}
        return cleaned or None
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [plain(item) for item in value]
        return [item for item in items if item is not None] or None
    return value


def build_payload(row: Mapping[str, Any], field_keys: Mapping[str, str]) -> dict[str, Any]:
    """One staged row -> a v2 body; `custom:<name>` columns go under `custom_fields` by their key."""
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for column, raw in row.items():
        if column == "source_id":
            continue
        value = plain(raw)
        if value is None:
            continue
        if column.startswith(CUSTOM_PREFIX):
            name = column.removeprefix(CUSTOM_PREFIX)
            if name not in field_keys:
                raise KeyError(f"custom field {name!r} has not been provisioned")
            custom[field_keys[name]] = value
        else:
            body[column] = value
    if custom:
        body["custom_fields"] = custom
    return body


def iter_payloads(staged: pd.DataFrame, field_keys: Mapping[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source id, body) for every staged row, in order."""
    for row in staged.to_dict("records"):
        yield str(row["source_id"]), build_payload(row, field_keys)
