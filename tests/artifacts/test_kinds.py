"""Artifact names, kinds and bounds, without a database."""

from typing import Any

import pytest

from app.artifacts.hierarchy import ArtifactHierarchy
from app.artifacts.kinds import (
    ArtifactInvalid,
    ArtifactKind,
    ArtifactTooLarge,
    check_description,
    check_name,
    normalise,
)


@pytest.mark.parametrize(
    ("kind", "data", "stored"),
    [
        ("json", {"a": [1, None]}, {"a": [1, None]}),
        ("text", "hello", "hello"),
        ("markdown", "# T", "# T"),
        ("table", {"columns": ["a"], "rows": [[1], [2]]}, {"columns": ["a"], "rows": [[1], [2]]}),
        ("table", [], {"columns": [], "rows": []}),
        ("table", [{"x": 1}], {"columns": ["x"], "rows": [[1]]}),
        ("link", {"url": "http://h/p", "title": "T"}, {"url": "http://h/p", "title": "T"}),
        ("link", "https://h", {"url": "https://h"}),
    ],
)
def test_accepted_shapes(kind: str, data: Any, stored: Any) -> None:
    assert normalise(kind, data, max_bytes=10_000) == (ArtifactKind(kind), stored)


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("text", 3),
        ("markdown", ["a"]),
        ("table", {"columns": ["a"]}),
        ("table", {"columns": [1], "rows": []}),
        ("table", {"columns": ["a"], "rows": [[1, 2]]}),
        ("table", [{"a": 1}, {"b": 1}]),
        ("link", {"url": "javascript:alert(1)"}),
        ("link", {"url": "https://h", "extra": 1}),
        ("link", {"url": "https://h", "title": 5}),
        ("json", object()),
        ("json", float("nan")),
        ("picture", "x"),
    ],
)
def test_rejected_shapes(kind: str, data: Any) -> None:
    with pytest.raises(ArtifactInvalid):
        normalise(kind, data, max_bytes=10_000)


def test_size_is_counted_in_json_bytes() -> None:
    # 100 two-byte characters plus the quotes: 202 bytes of JSON.
    assert normalise("text", "é" * 100, max_bytes=202)[1] == "é" * 100
    with pytest.raises(ArtifactTooLarge, match="203 bytes"):
        normalise("text", "é" * 100 + "a", max_bytes=202)


@pytest.mark.parametrize("name", ["a", "report.csv", "run-1_final", "A" * 200])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "result", "a b", "-lead", "x/y", "A" * 201])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ArtifactInvalid):
        check_name(name)


def test_description_is_bounded() -> None:
    assert check_description("d" * 2000) == "d" * 2000
    with pytest.raises(ArtifactInvalid):
        check_description("d" * 2001)


def test_hierarchy_labels_and_depth() -> None:
    hierarchy = ArtifactHierarchy("experiments", ["experiment", "run"])
    assert [hierarchy.label(n) for n in (0, 1, 2)] == ["experiment", "run", None]
    assert hierarchy.max_level == 1
    assert ArtifactHierarchy("plain").max_level == 31
    with pytest.raises(ValueError, match="name"):
        ArtifactHierarchy("")
    with pytest.raises(ValueError, match="labels"):
        ArtifactHierarchy("x", ["ok", ""])
