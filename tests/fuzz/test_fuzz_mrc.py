"""Fuzz the MRC readers (header and data): only InputError (one line naming the file) escapes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from corruption import BUDGETS, assert_budget, run_fuzz
from hypothesis import strategies as st

from cryoensemble.io import MrcStackWriter, read_header, read_map, read_stack, write_map

# (byte offset, struct format) of the MRC2014 header words a reader interprets.
INT_WORDS = [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 64, 68, 72, 88, 92, 220]  # nx..mz, map*, ispg..
FLOAT_WORDS = [40, 44, 48, 52, 56, 60, 76, 80, 84, 196, 200, 204, 216]  # cella, cellb, stats..
ODD_INTS = [0, 1, -1, 2, 3, 4, 6, 8, 12, 16, 101, 230, 401, 1024, 2**31 - 1, -(2**31)]
ODD_FLOATS = [0.0, -0.0, -1.0, 1.0, 1e-30, 1e30, float("nan"), float("inf"), float("-inf")]


def _originals(folder) -> list[bytes]:
    rng = np.random.default_rng(0)
    with MrcStackWriter(folder / "s.mrcs", box_size=6, pixel_size=1.5) as w:
        w.append(rng.normal(size=(3, 6, 6)))
    write_map(folder / "m.mrc", rng.normal(size=(4, 4, 4)), 2.0)
    return [(folder / name).read_bytes() for name in ("s.mrcs", "m.mrc")]


def _set_word(draw, data: bytes) -> bytes:
    if draw(st.booleans()):
        offset, value = (
            draw(st.sampled_from(INT_WORDS)),
            struct.pack("<i", draw(st.sampled_from(ODD_INTS))),
        )
    else:
        offset = draw(st.sampled_from(FLOAT_WORDS))
        value = struct.pack("<f", draw(st.sampled_from(ODD_FLOATS)))
    return data[:offset] + value + data[offset + 4 :]


def _set_data_value(draw, data: bytes) -> bytes:
    n = (len(data) - 1024) // 4
    if n <= 0:
        return data
    offset = 1024 + 4 * draw(st.integers(0, n - 1))
    value = struct.pack("<f", draw(st.sampled_from(ODD_FLOATS)))
    return data[:offset] + value + data[offset + 4 :]


def _flip_byte(draw, data: bytes) -> bytes:
    if not data:
        return data
    i = draw(st.integers(0, min(len(data), 1100) - 1))  # mostly the header
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]


def _resize(draw, data: bytes) -> bytes:
    if draw(st.booleans()):
        return data[: draw(st.integers(0, len(data)))]
    return data + draw(st.binary(min_size=1, max_size=64))


MUTATIONS = [_set_word, _set_word, _set_word, _set_data_value, _flip_byte, _resize]


@st.composite
def corrupted_mrc(draw, originals: list[bytes]) -> tuple[bytes, str]:
    data = draw(st.sampled_from(originals))
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.sampled_from(MUTATIONS))(draw, data)
    return data, draw(st.sampled_from(["header", "stack", "map", "subset"]))


def _check(folder):
    def check(example) -> None:
        data, reader = example
        path = folder / ("fuzz.mrcs" if reader in ("stack", "subset") else "fuzz.mrc")
        path.write_bytes(data)
        if reader == "header":
            info = read_header(path)
            assert info.nx > 0 and info.ny > 0 and info.nz > 0
        elif reader == "map":
            volume, voxel = read_map(path)
            assert np.all(np.isfinite(volume)) and np.isfinite(voxel) and voxel > 0
        elif reader == "stack":
            assert np.all(np.isfinite(read_stack(path)))
        else:
            assert np.all(np.isfinite(read_stack(path, [0, 0])))

    return check


def test_originals_read(tmp_path):
    stack, volume = _originals(tmp_path)
    check = _check(tmp_path)
    for reader in ("header", "stack", "subset"):
        check((stack, reader))
    for reader in ("header", "map"):
        check((volume, reader))


@pytest.mark.parametrize("n_examples", BUDGETS)
def test_fuzz_mrc(tmp_path, n_examples):
    strategy = corrupted_mrc(_originals(tmp_path))
    counts = run_fuzz(strategy, _check(tmp_path), n_examples, "fuzz.mrc")
    assert_budget(counts, n_examples)
