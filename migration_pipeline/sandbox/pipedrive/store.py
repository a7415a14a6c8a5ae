"""In-memory records with soft deletes.

Every object type is a table of plain dicts keyed by id, kept in the v2 response shape (v1
shape for the v1-only objects) so that reads are cheap copies. A soft-deleted record keeps
`is_deleted: true`: lists leave it out, a GET by id still finds it (as Pipedrive keeps
deleted items for 30 days), and writes refer to it in vain.
"""

from __future__ import annotations

import copy
from typing import Any

OBJECTS = ("organizations", "persons", "deals", "activities", "products", "pipelines", "stages", "deal_products",
           "leads", "lead_labels", "notes", "files", "organization_relationships")


class Store:
    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self._next_id: dict[str, int] = {name: 1 for name in OBJECTS}

    def new_id(self, table: str) -> int:
        value = self._next_id[table]
        self._next_id[table] = value + 1
        return value

    def add(self, table: str, record: dict[str, Any]) -> dict[str, Any]:
        if isinstance(record.get("id"), int):
            self._next_id[table] = max(self._next_id[table], record["id"] + 1)
        record.setdefault("is_deleted", False)
        self.tables[table][record["id"]] = record
        return record

    def get(self, table: str, record_id: Any) -> dict[str, Any] | None:
        return self.tables[table].get(record_id)

    def live(self, table: str, record_id: Any) -> dict[str, Any] | None:
        """The record unless it is missing or soft-deleted."""
        record = self.tables[table].get(record_id)
        return record if record is not None and not record.get("is_deleted") else None

    def rows(self, table: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [r for r in self.tables[table].values() if include_deleted or not r.get("is_deleted")]

    def remove(self, table: str, record_id: Any) -> None:
        """A hard delete, for objects Pipedrive does not keep (deal products)."""
        self.tables[table].pop(record_id, None)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {name: copy.deepcopy(list(rows.values())) for name, rows in self.tables.items()}
