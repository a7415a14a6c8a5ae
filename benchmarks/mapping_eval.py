"""How often the field-map proposer picks what a migration consultant would, on a labelled set.

Usage: `python benchmarks/mapping_eval.py [--labels benchmarks/data/mapping_labels.yaml] [--verbose]`.
The set (see the YAML's header) holds standard Dynamics 365 Sales entities and the customised
schemas of several imagined organisations (other UI languages, publisher prefixes, abbreviated
legacy names, sample values). A proposal is correct when what confirming it would do (its
standard target, `custom:<type>` for a new custom field, or `not_migrated`) is one of the
labelled answers; a `needs_decision` therefore counts by its default. The target is 90%.
Accuracy is also printed per organisation: the one marked "held out" was not tuned against.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from migration_pipeline.mapping.proposer import FieldProposal, SourceAttribute, propose_object

LABELS = Path(__file__).parent / "data" / "mapping_labels.yaml"


@dataclass(frozen=True)
class Scored:
    block: str  # "<org>/<entity>-><object>"
    attribute: str
    expected: tuple[str, ...]
    proposal: FieldProposal

    @property
    def correct(self) -> bool:
        return self.proposal.outcome in self.expected


@dataclass
class EvalResult:
    scored: list[Scored] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.scored)

    @property
    def accuracy(self) -> float:
        return sum(s.correct for s in self.scored) / self.size if self.size else 0.0

    @property
    def needs_decision(self) -> int:
        return sum(s.proposal.status == "needs_decision" for s in self.scored)

    @property
    def misses(self) -> list[Scored]:
        return [s for s in self.scored if not s.correct]


def _attribute(entity: str, prefixes: list[str], row: dict[str, Any]) -> SourceAttribute:
    options = row.get("options") or (["No", "Yes"] if row["type"] == "Boolean" else [])
    return SourceAttribute(
        entity=entity, logical_name=row["name"], attribute_type=row["type"], display_name=row.get("label", ""),
        description=row.get("description", ""), format=row.get("format"), max_length=row.get("max_length"),
        options=tuple(str(o) for o in options), targets=tuple(row.get("targets", ())),
        is_custom=row["name"].startswith(tuple(prefixes)), is_primary_id=row.get("primary_id", False),
        is_primary_name=row.get("primary_name", False),
    )


def evaluate(path: Path = LABELS) -> EvalResult:
    """Run the proposer over every labelled block and score each proposal against its label."""
    result = EvalResult()
    for block in yaml.safe_load(path.read_text(encoding="utf-8"))["blocks"]:
        rows = block["attributes"]
        attributes = [_attribute(block["entity"], block.get("prefixes", []), row) for row in rows]
        samples = {a.column: pd.Series(row["sample"], dtype=object) for a, row in zip(attributes, rows) if "sample" in row}
        name = f"{block['org']}/{block['entity']}->{block['object']}"
        for attribute, row, proposal in zip(attributes, rows, propose_object(attributes, block["object"], samples)):
            expected = row["expect"] if isinstance(row["expect"], list) else [row["expect"]]
            result.scored.append(Scored(name, attribute.logical_name, tuple(expected), proposal))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--verbose", action="store_true", help="print every proposal, not only the misses")
    args = parser.parse_args()
    result = evaluate(args.labels)
    for s in result.scored if args.verbose else []:
        p = s.proposal
        print(f"{'ok  ' if s.correct else 'MISS'} {s.block:<36} {p.source:<32} {p.status:<15} {p.outcome:<20} {p.reason}")
    print(f"labelled attributes: {result.size}")
    print(f"top-1 accuracy:      {result.accuracy:.1%} ({result.size - len(result.misses)}/{result.size})")
    print(f"needs_decision:      {result.needs_decision}")
    sizes = Counter(s.block.split("/")[0] for s in result.scored)
    correct = Counter(s.block.split("/")[0] for s in result.scored if s.correct)
    for org, size in sizes.items():
        print(f"  {org:<24} {correct[org] / size:6.1%} ({correct[org]}/{size})")
    print(f"misses ({len(result.misses)}):")
    for s in result.misses:
        p = s.proposal
        print(f"  {s.block}: {s.attribute} -> {p.outcome} [{p.status} {p.confidence:.2f}], "
              f"expected {' | '.join(s.expected)}: {p.reason}")
    return 0 if result.accuracy >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
