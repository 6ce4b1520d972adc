"""MRC maps and stacks: round trips, headers, atomic writes, and every bad-file error."""

from __future__ import annotations

import io

import mrcfile
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.io import MrcStackWriter, read_header, read_map, read_stack, write_map


def _leftovers(d):
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_map_round_trip_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(6, 7, 8)).astype(np.float32)
    path = write_map(tmp_path / "m.mrc", vol, 1.234)
    data, vs = read_map(path)
    assert data.dtype == np.float32 and data.shape == (6, 7, 8)
    assert np.array_equal(data, vol)
    assert vs == pytest.approx(1.234, rel=1e-6)
    with mrcfile.open(path) as m:
        assert m.header.ispg == 1
        assert m.voxel_size.x == pytest.approx(1.234, rel=1e-6)
        assert float(m.header.dmax) == pytest.approx(vol.max())
    assert _leftovers(tmp_path) == []


def test_write_map_refuses_overwrite(tmp_path):
    p = tmp_path / "m.mrc"
    write_map(p, np.zeros((2, 2, 2)), 1.0)
    with pytest.raises(InputError, match="m.mrc.*exists"):
        write_map(p, np.ones((2, 2, 2)), 1.0)
    assert np.array_equal(read_map(p)[0], np.zeros((2, 2, 2)))
    write_map(p, np.ones((2, 2, 2)), 1.0, overwrite=True)
    assert np.array_equal(read_map(p)[0], np.ones((2, 2, 2)))
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("vs", [0.0, -1.0, float("nan")])
def test_write_map_bad_voxel_size(tmp_path, vs):
    with pytest.raises(InputError, match="voxel_size"):
        write_map(tmp_path / "m.mrc", np.zeros((2, 2, 2)), vs)
    assert not (tmp_path / "m.mrc").exists()


def test_write_map_needs_3d(tmp_path):
    with pytest.raises(InputError, match="3-D"):
        write_map(tmp_path / "m.mrc", np.zeros((2, 2)), 1.0)


def test_read_map_missing(tmp_path):
    with pytest.raises(InputError, match="nothere.mrc.*not found"):
        read_map(tmp_path / "nothere.mrc")


def test_read_map_empty(tmp_path):
    p = tmp_path / "empty.mrc"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty.mrc.*empty"):
        read_map(p)


def test_read_map_invalid(tmp_path):
    p = tmp_path / "junk.mrc"
    p.write_bytes(b"this is not an MRC file" * 100)
    with pytest.raises(InputError, match="junk.mrc"):
        read_map(p)


def test_read_map_header_only_file(tmp_path):
    p = tmp_path / "short.mrc"
    p.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="short.mrc"):
        read_map(p)


def test_read_map_truncated(tmp_path):
    p = write_map(tmp_path / "t.mrc", np.ones((4, 4, 4)), 1.0)
    raw = p.read_bytes()
    p.write_bytes(raw[:-10])
    with pytest.raises(InputError, match="t.mrc.*truncated"):
        read_map(p)


def test_read_map_too_long(tmp_path):
    p = write_map(tmp_path / "long.mrc", np.ones((4, 4, 4)), 1.0)
    with open(p, "ab") as f:
        f.write(b"\0" * 16)
    with pytest.raises(InputError, match="long.mrc.*larger"):
        read_map(p)


def test_read_map_zero_voxel_size(tmp_path):
    p = tmp_path / "novs.mrc"
    with mrcfile.new(p) as m:
        m.set_data(np.ones((3, 3, 3), np.float32))
    with pytest.raises(InputError, match="novs.mrc.*voxel size"):
        read_map(p)


def test_read_map_axis_order(tmp_path):
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # [z, y, x]
    p = tmp_path / "perm.mrc"
    with mrcfile.new(p) as m:
        m.set_data(np.ascontiguousarray(vol.transpose(0, 2, 1)))  # stored [z][x][y]
        m.header.mapc, m.header.mapr, m.header.maps = 2, 1, 3
        m.voxel_size = 2.0
    data, vs = read_map(p)
    assert np.array_equal(data, vol) and vs == 2.0


def test_stack_writer_header_and_data(tmp_path):
    rng = np.random.default_rng(1)
    imgs = (rng.normal(size=(7, 10, 10)) * 3 + 5).astype(np.float32)
    p = tmp_path / "s.mrcs"
    with MrcStackWriter(p, box_size=10, pixel_size=1.7) as w:
        w.append(imgs[0])  # a single image
        w.append(imgs[1:4])
        w.append(imgs[4:])
    assert _leftovers(tmp_path) == []
    assert mrcfile.validate(str(p), print_file=io.StringIO())
    with mrcfile.open(p) as m:
        h = m.header
        assert (int(h.nx), int(h.ny), int(h.nz)) == (10, 10, 7)
        assert int(h.ispg) == 0 and int(h.mz) == 1 and int(h.mode) == 2
        assert m.voxel_size.x == pytest.approx(1.7, rel=1e-6)
        assert m.voxel_size.y == pytest.approx(1.7, rel=1e-6)
        assert m.voxel_size.z == pytest.approx(1.7, rel=1e-6)
        assert float(h.dmin) == imgs.min() and float(h.dmax) == imgs.max()
        assert float(h.dmean) == pytest.approx(imgs.astype(np.float64).mean(), rel=1e-6)
        assert float(h.rms) == pytest.approx(imgs.astype(np.float64).std(), rel=1e-5)
        assert np.array_equal(m.data, imgs)
    assert np.array_equal(read_stack(p), imgs)
    assert np.array_equal(read_stack(p, [5, 0, 5]), imgs[[5, 0, 5]])
    info = read_header(p)
    assert (info.nx, info.ny, info.n_images, info.ispg) == (10, 10, 7, 0)


def test_stack_single_image(tmp_path):
    p = tmp_path / "one.mrcs"
    with MrcStackWriter(p, 4, 1.0) as w:
        w.append(np.ones((4, 4)))
    assert read_stack(p).shape == (1, 4, 4)


def test_stack_writer_exception_leaves_nothing(tmp_path):
    p = tmp_path / "s.mrcs"
    with pytest.raises(RuntimeError, match="boom"):
        with MrcStackWriter(p, 4, 1.0) as w:
            w.append(np.zeros((2, 4, 4)))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_stack_writer_wrong_shape(tmp_path):
    p = tmp_path / "s.mrcs"
    with pytest.raises(InputError, match="s.mrcs.*shape"):
        with MrcStackWriter(p, 4, 1.0) as w:
            w.append(np.zeros((2, 5, 5)))
    assert list(tmp_path.iterdir()) == []


def test_stack_writer_n_images(tmp_path):
    p = tmp_path / "s.mrcs"
    with pytest.raises(InputError, match="s.mrcs.*n_images"):
        with MrcStackWriter(p, 4, 1.0, n_images=3) as w:
            w.append(np.zeros((2, 4, 4)))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="s.mrcs.*n_images"):
        with MrcStackWriter(p, 4, 1.0, n_images=1) as w:
            w.append(np.zeros((2, 4, 4)))
    assert list(tmp_path.iterdir()) == []
    with MrcStackWriter(p, 4, 1.0, n_images=2) as w:
        w.append(np.zeros((2, 4, 4)))
    assert read_stack(p).shape == (2, 4, 4)


def test_stack_writer_refuses_overwrite(tmp_path):
    p = tmp_path / "s.mrcs"
    p.write_bytes(b"keep")
    with pytest.raises(InputError, match="s.mrcs.*exists"):
        with MrcStackWriter(p, 4, 1.0) as w:
            w.append(np.zeros((1, 4, 4)))
    assert p.read_bytes() == b"keep"
    with MrcStackWriter(p, 4, 1.0, overwrite=True) as w:
        w.append(np.ones((1, 4, 4)))
    assert np.array_equal(read_stack(p), np.ones((1, 4, 4)))


def test_stack_writer_empty_is_error(tmp_path):
    with pytest.raises(InputError, match="no images"):
        with MrcStackWriter(tmp_path / "s.mrcs", 4, 1.0):
            pass
    assert list(tmp_path.iterdir()) == []


def test_read_stack_truncated_mmap(tmp_path):
    p = tmp_path / "trunc.mrcs"
    with MrcStackWriter(p, 8, 1.0) as w:
        w.append(np.ones((5, 8, 8)))
    p.write_bytes(p.read_bytes()[: 1024 + 3 * 8 * 8 * 4])
    with pytest.raises(InputError, match="trunc.mrcs.*truncated"):
        read_stack(p)
    with pytest.raises(InputError, match="trunc.mrcs.*truncated"):
        read_header(p)


def test_read_stack_index_out_of_range(tmp_path):
    p = tmp_path / "s.mrcs"
    with MrcStackWriter(p, 4, 1.0) as w:
        w.append(np.ones((2, 4, 4)))
    with pytest.raises(InputError, match="s.mrcs.*out of range"):
        read_stack(p, [2])
