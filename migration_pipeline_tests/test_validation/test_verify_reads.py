"""How verify reads organization relationships back: an organization's list (20 tokens) only where it pays."""

from __future__ import annotations

from migration_pipeline.steps.verify import plan_relationship_reads


def relationships(*pairs: tuple[int, int]) -> dict[str, dict[str, object]]:
    return {str(index): {"type": "parent", "rel_owner_org_id": owner, "rel_linked_org_id": linked}
            for index, (owner, linked) in enumerate(pairs, start=1)}


def test_pairs_and_chains_are_read_by_id_at_2_tokens_each() -> None:
    loaded = relationships((1, 2), (3, 4), (2, 5))
    assert plan_relationship_reads(loaded) == ([], ["1", "2", "3"])


def test_a_holding_with_many_subsidiaries_is_read_by_its_list_the_rest_by_id() -> None:
    loaded = relationships(*((100, child) for child in range(1, 13)), (200, 201), (200, 202))
    listed, by_id = plan_relationship_reads(loaded)
    assert listed == [100]  # 12 relationships for 20 tokens instead of 24
    assert by_id == ["13", "14"]


def test_a_relationship_is_listed_once_even_when_both_its_organizations_are_listed() -> None:
    loaded = relationships(*((1, child) for child in range(10, 20)), *((2, child) for child in range(20, 29)), (1, 2))
    listed, by_id = plan_relationship_reads(loaded, list_pays=10)
    assert listed == [1]  # 11 of them; organization 2 then brings only 9 more: by id is cheaper
    assert len(by_id) == 9
