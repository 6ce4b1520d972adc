"""Random corruptions of valid input files, and the fuzz driver shared by ``tests/fuzz``.

Each fuzz test starts from valid files, applies one to three random corruptions (byte flips,
truncation, inserted, deleted, duplicated or swapped lines, inserted, deleted or replaced tokens,
odd numbers such as NaN and inf) and asserts that the reader either succeeds or raises
:class:`cryoensemble.errors.InputError` with a one-line message naming the file. Generation is
derandomised, so CI sees the same inputs every run.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryoensemble.errors import InputError

#: Examples per reader: a fast default run, and the CI budget (marked slow).
FAST_EXAMPLES = 200
CI_EXAMPLES = 2000
BUDGETS = [
    pytest.param(FAST_EXAMPLES, id="fast"),
    pytest.param(CI_EXAMPLES, id="ci", marks=pytest.mark.slow),
]

#: Values that break numeric fields: non-finite, overflowing, denormal, not numbers, empty.
ODD_VALUES = [
    b"nan", b"NaN", b"-nan", b"inf", b"-inf", b"Infinity", b"1e308", b"-1e308", b"1e400",
    b"0", b"-0", b"-1", b"1e-320", b"3.5", b"12", b"abc", b"''", b'""', b"?", b".", b"9" * 30,
]  # fmt: skip
#: ... and tokens that break the layout of text formats.
ODD_TOKENS = [
    *ODD_VALUES, b"0x1F", b"1_000", b"000000@x.mrcs", b"@", b"#", b"_", b"data_", b"loop_",
    b"'a b'",
]  # fmt: skip
#: Single bytes worth planting: separators, quotes, comment and label markers, NUL, non-UTF-8.
ODD_BYTES = [b"\n", b" ", b"\t", b"\r", b"#", b"'", b'"', b"_", b"@", b"\0", b"\xff", b"\xc3"]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _flip_byte(draw, data: bytes) -> bytes:
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    new = draw(st.one_of(st.sampled_from(ODD_BYTES), st.binary(min_size=1, max_size=1)))
    return data[:i] + new + data[i + 1 :]


def _truncate(draw, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data)))]


def _delete_line(draw, data: bytes) -> bytes:
    lines = _lines(data)
    del lines[draw(st.integers(0, len(lines) - 1))]
    return b"\n".join(lines)


def _duplicate_line(draw, data: bytes) -> bytes:
    lines = _lines(data)
    src = draw(st.integers(0, len(lines) - 1))
    lines.insert(draw(st.integers(0, len(lines))), lines[src])
    return b"\n".join(lines)


def _swap_lines(draw, data: bytes) -> bytes:
    lines = _lines(data)
    i, j = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _insert_line(draw, data: bytes) -> bytes:
    lines = _lines(data)
    new = draw(st.one_of(st.sampled_from(ODD_TOKENS), st.binary(max_size=12)))
    lines.insert(draw(st.integers(0, len(lines))), new)
    return b"\n".join(lines)


def _edit_token(draw, data: bytes) -> bytes:
    """Insert, delete or replace one whitespace-separated token of one line."""
    lines = _lines(data)
    k = draw(st.integers(0, len(lines) - 1))
    tokens = lines[k].split()
    i = draw(st.integers(0, len(tokens)))
    action = draw(st.sampled_from(["insert", "delete", "replace"]))
    new = draw(st.one_of(st.sampled_from(ODD_TOKENS), st.binary(min_size=1, max_size=6)))
    if action == "insert" or not tokens:
        tokens.insert(i, new)
    elif action == "delete":
        del tokens[min(i, len(tokens) - 1)]
    else:
        tokens[min(i, len(tokens) - 1)] = new
    lines[k] = b" ".join(tokens)
    return b"\n".join(lines)


def _replace_value(draw, data: bytes) -> bytes:
    """Replace one token by an odd one, keeping the number of tokens (the layout) intact."""
    lines = _lines(data)
    candidates = [k for k, line in enumerate(lines) if len(line.split()) >= 1]
    if not candidates:
        return data
    k = draw(st.sampled_from(candidates))
    tokens = lines[k].split()
    tokens[draw(st.integers(0, len(tokens) - 1))] = draw(st.sampled_from(ODD_VALUES))
    lines[k] = b" ".join(tokens)
    return b"\n".join(lines)


TEXT_MUTATIONS: list[Callable] = [
    _flip_byte,
    _truncate,
    _delete_line,
    _duplicate_line,
    _swap_lines,
    _insert_line,
    _edit_token,
    _replace_value,  # values are where most readers have their checks: draw them more often
    _replace_value,
    _replace_value,
]


@st.composite
def corrupted(draw, originals: list[bytes], mutations: list[Callable] = TEXT_MUTATIONS) -> bytes:
    """One of ``originals`` with one to three random ``mutations`` applied in turn."""
    data = draw(st.sampled_from(originals))
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.sampled_from(mutations))(draw, data)
    return data


def run_fuzz(
    strategy, check: Callable[[object], None], n_examples: int, name: str
) -> collections.Counter:
    """Run ``check`` on ``n_examples`` derandomised examples; count its outcomes.

    ``check`` returns normally for success and raises for a refusal; anything but
    :class:`InputError` with a one-line message naming ``name`` (the file) fails the test
    (hypothesis reports the smallest such input). Returns the counts of "ok" and "refused".
    """
    counts: collections.Counter = collections.Counter()

    @settings(
        max_examples=n_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def body(example) -> None:
        try:
            check(example)
        except InputError as err:
            assert_one_line(err, name)
            counts["refused"] += 1
        else:
            counts["ok"] += 1

    body()
    return counts


def assert_one_line(err: InputError, name: str) -> None:
    """The message is one non-empty line that names the file ``name``."""
    msg = str(err)
    assert msg and "\n" not in msg.strip(), msg
    assert name in msg, msg


def assert_budget(counts: collections.Counter, n_examples: int) -> None:
    """The budget was spent (hypothesis may stop a little early) and both outcomes occurred,
    so the corruptions neither all fail at the start nor all leave the file intact."""
    total = counts["ok"] + counts["refused"]
    print(f"{total} examples: {dict(counts)}")
    assert total >= 0.9 * n_examples, counts
    assert counts["ok"] >= 0.01 * total and counts["refused"] >= 0.2 * total, counts
