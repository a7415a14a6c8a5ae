"""What each Pipedrive call costs in rate-limit tokens, and which operation a concrete path is.

Pipedrive charges a flat number of tokens per call against the company's daily budget; the
official OpenAPI specs carry it as `x-token-cost` on every operation. `_cost_table.py` is
that table, generated from the specs (`python -m migration_pipeline.pipedrive.costs
SPECS_DIR`) so that the client never guesses a price it could read, and a test checks it
still matches the specs.

Lookups take a concrete path (`/deals/123/products/bulk`) and find its template
(`/deals/{id}/products/bulk`): the template is also the key usage is reported under, so
a million creates add up under one name instead of a million.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from migration_pipeline.pipedrive._cost_table import TOKEN_COSTS

Version = Literal["v1", "v2"]

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# What an operation missing from the specs is charged: the dearest common price of its
# method (a list GET, a create, a delete), so that budgets err on the safe side.
FALLBACK_COSTS: dict[Version, dict[str, int]] = {
    "v2": {"GET": 10, "POST": 5, "PUT": 5, "PATCH": 5, "DELETE": 3},
    "v1": {"GET": 20, "POST": 10, "PUT": 10, "PATCH": 10, "DELETE": 6},
}
_IDENTIFIER = re.compile(r"^(\d+|[0-9a-fA-F-]{32,40})$")


@dataclass(frozen=True)
class Operation:
    """One priced API operation: `GET /api/v2/deals/{id}` costs 1 token."""

    version: Version
    method: str
    template: str
    cost: int

    @property
    def name(self) -> str:
        """The key usage is counted under, e.g. `POST /api/v2/deals/{id}/products/bulk`."""
        return f"{self.method} /api/{self.version}{self.template}"

    @property
    def object(self) -> str:
        """The object the operation works on: the literal segments, e.g. `deals/products`."""
        return "/".join(part for part in self.template.strip("/").split("/") if not part.startswith("{"))

    @property
    def is_search(self) -> bool:
        """Search calls have their own, smaller burst window (10 per 2 s on every plan)."""
        last = self.template.rstrip("/").rsplit("/", 1)[-1]
        return last == "search" or self.template.startswith("/itemSearch")


def operation(version: Version, method: str, path: str) -> Operation:
    """The priced operation for a concrete `path` (relative to `/api/{version}`).

    A path the specs do not list is priced at `FALLBACK_COSTS` under a generalised template.
    """
    listed = lookup(version, method, path)
    if listed is not None:
        return listed
    path = "/" + path.strip("/")
    return Operation(version, method.upper(), _generalise(path), FALLBACK_COSTS[version][method.upper()])


def lookup(version: Version, method: str, path: str) -> Operation | None:
    """The operation the specs list for a concrete `path`, or None."""
    method = method.upper()
    template = _match(version, method, "/" + path.strip("/"))
    if template is None:
        return None
    return Operation(version, method, template, TOKEN_COSTS[(version, method, template)])


def _match(version: Version, method: str, path: str) -> str | None:
    """The most specific template matching `path`: literal segments beat `{parameters}`.

    `/deals/products` matches both `/deals/products` and `/deals/{id}`; comparing the
    literal-or-not pattern segment by segment prefers the first, as a router does.
    """
    segments = path.strip("/").split("/")
    best: tuple[tuple[bool, ...], str] | None = None
    for template in _templates(version, method, len(segments)):
        parts = template.strip("/").split("/")
        if all(part.startswith("{") or part == segment for part, segment in zip(parts, segments)):
            rank = tuple(not part.startswith("{") for part in parts)
            if best is None or rank > best[0]:
                best = (rank, template)
    return best[1] if best else None


@lru_cache(maxsize=None)
def _templates(version: Version, method: str, length: int) -> tuple[str, ...]:
    return tuple(
        template
        for (v, m, template) in TOKEN_COSTS
        if v == version and m == method and len(template.strip("/").split("/")) == length
    )


def _generalise(path: str) -> str:
    """A template for an unlisted path: numeric ids and UUIDs become `{id}`."""
    return "/" + "/".join("{id}" if _IDENTIFIER.match(part) else part for part in path.strip("/").split("/"))


# --- generating `_cost_table.py` from the specs -------------------------------------------

SPEC_FILES: dict[Version, str] = {"v1": "pipedrive-openapi-v1.yaml", "v2": "pipedrive-openapi-v2.yaml"}


def costs_from_specs(specs_dir: Path) -> dict[tuple[Version, str, str], int]:
    """Every operation's `x-token-cost`, read from the two official OpenAPI files."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    table: dict[tuple[Version, str, str], int] = {}
    for version, file_name in SPEC_FILES.items():
        spec = yaml.load((specs_dir / file_name).read_text(encoding="utf-8"), Loader=loader)
        for template, item in spec["paths"].items():
            for method, definition in item.items():
                if method.upper() in HTTP_METHODS and "x-token-cost" in definition:
                    table[(version, method.upper(), template)] = int(definition["x-token-cost"])
    return dict(sorted(table.items()))


def render_table(table: dict[tuple[Version, str, str], int]) -> str:
    """The source of `_cost_table.py` for `table`."""
    lines: Iterable[str] = (f"    ({v!r}, {m!r}, {t!r}): {cost}," for (v, m, t), cost in sorted(table.items()))
    return (
        '"""Token cost of every Pipedrive operation, from the specs\' `x-token-cost`.\n\n'
        "Generated by `python -m migration_pipeline.pipedrive.costs SPECS_DIR`; do not edit.\n"
        '"""\n\n'
        "TOKEN_COSTS: dict[tuple[str, str, str], int] = {\n" + "\n".join(lines) + "\n}\n"
    )


def main(argv: list[str]) -> None:
    """Regenerate `_cost_table.py` from the folder holding the two spec files."""
    specs_dir = Path(argv[0]) if argv else Path("/work/shared/specs")
    target = Path(__file__).with_name("_cost_table.py")
    target.write_text(render_table(costs_from_specs(specs_dir)), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
