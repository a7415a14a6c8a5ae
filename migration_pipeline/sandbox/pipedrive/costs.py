"""Token cost of every operation, read from the specs' `x-token-cost`.

Pipedrive charges each call a flat number of tokens from the company's daily budget; the
official specs carry that number per operation. The table maps a concrete request path to
its path template (literal segments win over `{param}` segments, so `/deals/search` is not
taken for `/deals/{id}`) and from there to the cost.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from migration_pipeline.sandbox.pipedrive.spec import HTTP_METHODS, Version, load_spec


@dataclass(frozen=True)
class Operation:
    version: Version
    method: str  # upper case
    template: str  # as in the spec, e.g. "/deals/{id}/products"
    cost: int


def _pattern(template: str) -> re.Pattern[str]:
    parts = [("[^/]+" if part.startswith("{") else re.escape(part)) for part in template.split("/")]
    return re.compile("/".join(parts) + "$")


def _specificity(template: str) -> tuple[int, int]:
    """Sort key: fewer parameters first, then longer templates."""
    return (template.count("{"), -len(template))


class CostTable:
    """All operations of both specs, searchable by concrete path."""

    def __init__(self, operations: list[Operation]) -> None:
        self._by_key = {(op.version, op.method, op.template): op for op in operations}
        self._routes: dict[tuple[str, str], list[tuple[re.Pattern[str], Operation]]] = {}
        for op in sorted(operations, key=lambda op: _specificity(op.template)):
            self._routes.setdefault((op.version, op.method), []).append((_pattern(op.template), op))

    @classmethod
    @functools.cache
    def from_specs(cls) -> CostTable:
        operations = []
        for version in ("v1", "v2"):
            for template, item in load_spec(version)["paths"].items():
                for method in HTTP_METHODS:
                    if method in item:
                        cost = int(item[method].get("x-token-cost", 0))
                        operations.append(Operation(version, method.upper(), template, cost))
        return cls(operations)

    def cost(self, version: Version, method: str, template: str) -> int:
        return self._by_key[(version, method.upper(), template)].cost

    def match(self, version: Version, method: str, path: str) -> Operation | None:
        """The operation a concrete path (relative to the version root) belongs to."""
        for pattern, op in self._routes.get((version, method.upper()), []):
            if pattern.match(path):
                return op
        return None
