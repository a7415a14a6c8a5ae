"""Value transforms, one rule per case, on small hand-made series."""

from __future__ import annotations

import pandas as pd
import pytest

from migration_pipeline.mapping import transforms


@pytest.mark.parametrize(
    ("raw", "value", "problem"),
    [
        ("https://contoso.com", "https://contoso.com", None),
        ("www.contoso.co.uk/about", "https://www.contoso.co.uk/about", None),
        ("  http://fabrikam.com  ", "http://fabrikam.com", None),
        ("not a url", None, "not a valid website URL"),
        ("http://", None, "not a valid website URL"),
        (None, None, None),
        ("", None, None),
    ],
)
def test_url(raw: str | None, value: str | None, problem: str | None) -> None:
    carried = transforms.url(pd.Series([raw], dtype=object))
    assert carried.values.iloc[0] == value
    assert carried.problems.iloc[0] == problem


@pytest.mark.parametrize(
    ("raw", "value", "rejected"),
    [(12, 12, False), (12.6, 13, False), (-5, None, True), (10**9, None, True), (None, None, False), ("x", None, True)],
)
def test_integer_range(raw: object, value: int | None, rejected: bool) -> None:
    carried = transforms.integer(pd.Series([raw], dtype=object), min_value=0, max_value=10_000_000)
    assert carried.values.iloc[0] == value
    assert (carried.problems.iloc[0] is not None) == rejected


def test_text_is_trimmed_and_cut_with_the_cut_reported() -> None:
    carried = transforms.text(pd.Series(["  a  ", "x" * 300, "   ", None], dtype=object), max_length=255)
    assert carried.values.tolist() == ["a", "x" * 255, None, None]
    assert carried.problems.iloc[1] == "cut to 255 characters (Pipedrive's limit)"
    assert carried.problems.isna().tolist() == [True, False, True, True]


def test_owner_goes_through_map_then_fallback() -> None:
    carried = transforms.owner(pd.Series(["A", "b", None]), {"a": 1}, fallback_owner_id=9)
    assert carried.values.tolist() == [1, 9, 9]
    assert carried.problems.isna().all()


def test_owner_without_fallback_is_reported() -> None:
    carried = transforms.owner(pd.Series(["b"]), {"a": 1}, fallback_owner_id=None)
    assert carried.values.tolist() == [None]
    assert "no fallback" in carried.problems.iloc[0]


def test_address_composite_and_parts() -> None:
    frame = pd.DataFrame(
        {
            "address1_line1": ["1 Main St", None],
            "address1_city": ["Oslo", None],
            "address1_postalcode": ["0150", None],
            "address1_country": ["Norway", None],
        }
    )
    carried = transforms.address(frame)
    assert carried.values.iloc[0] == {
        "value": "1 Main St, Oslo, 0150, Norway",
        "route": "1 Main St",
        "locality": "Oslo",
        "postal_code": "0150",
        "country": "Norway",
    }
    assert carried.values.iloc[1] is None
