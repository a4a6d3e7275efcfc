"""Byte bounds: texts cut with a marker, JSON sizes counted without building the text."""

import json
import math
from typing import Any

import pytest

from app.core.settings import Settings
from app.jobs.bounds import Bounds, json_size, truncate_head, truncate_middle, utf8_size

MARKER = "… [truncated "


def size(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -17,
        10**40,
        1.5,
        -0.0,
        1e-300,
        "",
        "plain",
        'quote " and back\\slash',
        "control \n \t \x00 \x1f \x7f",
        "accents é and emoji 🎉 and cjk 漢字",
        [],
        {},
        [1, [2, [3, {"a": None}]]],
        {"k": "v", "n": [1.25, "x"], "é": {"deep": [True, False]}},
    ],
)
def test_json_size_is_the_compact_utf8_size(value: Any) -> None:
    expected = size(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    assert json_size(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, [1, -math.inf], {"a": {"b": math.nan}}])
def test_json_size_rejects_nan_and_infinity(value: Any) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        json_size(value)


def test_json_size_rejects_what_is_not_json() -> None:
    with pytest.raises(TypeError, match="set is not a JSON type"):
        json_size({"a": {1, 2}})
    with pytest.raises(TypeError, match="a tuple key is not valid JSON"):
        json_size({(1, 2): 3})


def test_json_size_of_keys_json_dumps_converts() -> None:
    value = {7: "a", 2.5: "b", None: "c", False: "d", "s": "e"}
    expected = size(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    assert json_size(value) == expected


def test_text_within_the_bound_is_unchanged() -> None:
    for text in ("", "short", "é" * 100):
        assert truncate_head(text, 200) == text
        assert truncate_middle(text, 200) == text
    exact = "x" * 300
    assert truncate_head(exact, 300) == exact


def test_truncate_head_keeps_the_start_and_says_how_much_was_cut() -> None:
    text = "a" * 10_000 + "END"

    cut = truncate_head(text, 1000)

    assert size(cut) <= 1000
    assert cut.startswith("a" * 900)
    dropped = int(cut.split(MARKER)[1].split(" bytes]")[0])
    assert size(cut.split(MARKER)[0]) + dropped == size(text)
    assert cut.endswith(f"{MARKER}{dropped} bytes]")


def test_truncate_middle_keeps_the_start_and_the_end() -> None:
    text = "HEAD" + "m" * 100_000 + "TAIL"

    cut = truncate_middle(text, 2000)

    assert size(cut) <= 2000
    assert cut.startswith("HEAD")
    assert cut.endswith("TAIL")
    head, rest = cut.split(f"\n{MARKER}")
    dropped_text, tail = rest.split(" bytes]\n")
    assert size(head) + int(dropped_text) + size(tail) == size(text)


def test_cuts_never_split_a_character() -> None:
    text = "é🎉" * 5000
    for limit in range(256, 300):
        for cut in (truncate_head(text, limit), truncate_middle(text, limit)):
            assert size(cut) <= limit
            cut.encode("utf-8")  # whole characters only
            assert "\ufffd" not in cut


def test_utf8_size() -> None:
    assert utf8_size("abc") == 3
    assert utf8_size("é🎉") == 2 + 4


def test_bounds_come_from_the_settings() -> None:
    settings = Settings(
        _env_file=None,
        max_result_bytes=5000,
        max_error_message_bytes=300,
        max_traceback_bytes=2000,
        max_log_line_bytes=400,
        max_log_bytes=9000,
        expose_traceback_paths=True,
    )

    assert Bounds.from_settings(settings) == Bounds(5000, 300, 2000, 400, 9000, True)


def test_default_bounds() -> None:
    settings = Settings(_env_file=None)

    assert Bounds.from_settings(settings) == Bounds()
    assert Bounds() == Bounds(10 * 2**20, 8 * 2**10, 64 * 2**10, 32 * 2**10, 2 * 2**20, False)
