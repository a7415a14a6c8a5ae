"""The two official Pipedrive OpenAPI documents, shipped as package data.

The simulator takes paths, request schemas, response schemas and `x-token-cost` from these
files rather than restating them, so the sandbox cannot drift from what Pipedrive publishes.
Parsing 2.8 MB of YAML takes about half a second, so each document is loaded once per process.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import yaml

Version = Literal["v1", "v2"]
SPEC_DIR = Path(__file__).parent / "openapi"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")

try:  # The C loader is five times faster; fall back when libyaml is missing.
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


def spec_path(version: Version) -> Path:
    return SPEC_DIR / f"pipedrive-openapi-{version}.yaml"


@functools.cache
def load_spec(version: Version) -> dict[str, Any]:
    """The parsed document. Callers must not mutate it (it is shared)."""
    with spec_path(version).open("rb") as handle:
        return yaml.load(handle, Loader=_Loader)


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` (one level; nested refs are resolved as they are visited)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operation(version: Version, method: str, template: str) -> dict[str, Any]:
    return load_spec(version)["paths"][template][method.lower()]
