"""The lazy particle dataset: round trips, indexing, path resolution, batching, validation."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from cryoensemble.errors import InputError
from cryoensemble.imaging import ParticleBatch
from cryoensemble.io import MrcStackWriter, ParticleDataset, format_image_name, write_particles
from cryoensemble.pose import euler_to_matrix

BOX = 12


def _optics(px=(1.3,), size=BOX):
    return pd.DataFrame(
        {
            "rlnOpticsGroup": np.arange(1, len(px) + 1),
            "rlnVoltage": 300.0,
            "rlnSphericalAberration": 2.7,
            "rlnAmplitudeContrast": 0.1,
            "rlnImagePixelSize": list(px),
            "rlnImageSize": size,
        }
    )


def _particles(names, rng, groups=None):
    n = len(names)
    return pd.DataFrame(
        {
            "rlnImageName": names,
            "rlnAngleRot": rng.uniform(-180, 180, n),
            "rlnAngleTilt": rng.uniform(0, 180, n),
            "rlnAnglePsi": rng.uniform(-180, 180, n),
            "rlnOriginXAngst": rng.normal(size=n),
            "rlnOriginYAngst": rng.normal(size=n),
            "rlnDefocusU": rng.uniform(1e4, 2e4, n),
            "rlnDefocusV": rng.uniform(1e4, 2e4, n),
            "rlnDefocusAngle": rng.uniform(0, 90, n),
            "rlnOpticsGroup": 1 if groups is None else groups,
            "cryoensembleStructureIndex": np.arange(n) % 2,
        }
    )


def _stack(path, images, px=1.3):
    path.parent.mkdir(parents=True, exist_ok=True)
    with MrcStackWriter(path, images.shape[-1], px) as w:
        for i in range(0, len(images), 4):  # incremental appends
            w.append(images[i : i + 4])
    return path


@pytest.fixture
def project(tmp_path):
    """Two stacks (7 and 5 images) under tmp/Particles, STAR at tmp/p.star with interleaved
    references; returns (star path, images by (stack, 0-based index), particles frame)."""
    rng = np.random.default_rng(42)
    a = rng.normal(size=(7, BOX, BOX)).astype(np.float32)
    b = rng.normal(size=(5, BOX, BOX)).astype(np.float32)
    _stack(tmp_path / "Particles" / "a.mrcs", a)
    _stack(tmp_path / "Particles" / "b.mrcs", b)
    refs = [
        ("a", 3),
        ("b", 0),
        ("a", 0),
        ("a", 6),
        ("b", 4),
        ("b", 2),
        ("a", 1),
        ("a", 2),
        ("b", 1),
    ]
    names = [format_image_name(i + 1, f"Particles/{s}.mrcs") for s, i in refs]
    particles = _particles(names, rng)
    star = write_particles(tmp_path / "p.star", (_optics(), particles))
    expected = np.stack([{"a": a, "b": b}[s][i] for s, i in refs])
    return star, expected, particles


def test_round_trip_images_and_parameters(project, monkeypatch):
    star, expected, particles = project
    monkeypatch.chdir(star.parent)
    ds = ParticleDataset(star)
    assert len(ds) == 9 and ds.box_size == BOX and ds.pixel_size == pytest.approx(1.3)
    batch = ds.batch(np.arange(9))
    assert isinstance(batch, ParticleBatch)
    assert batch.images.dtype == jnp.float32 and batch.images.shape == (9, BOX, BOX)
    assert np.array_equal(np.asarray(batch.images), expected)  # bit for bit
    f32 = lambda c: particles[c].to_numpy(np.float32)
    ref = euler_to_matrix(
        *(jnp.asarray(f32(c)) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"))
    )
    assert np.array_equal(np.asarray(batch.rotations), np.asarray(ref))
    assert np.array_equal(
        np.asarray(batch.shifts), np.stack([f32("rlnOriginXAngst"), f32("rlnOriginYAngst")], -1)
    )
    assert np.array_equal(np.asarray(batch.ctf.defocus_u), f32("rlnDefocusU"))
    assert np.array_equal(np.asarray(batch.ctf.defocus_v), f32("rlnDefocusV"))
    assert np.array_equal(np.asarray(batch.ctf.defocus_angle), f32("rlnDefocusAngle"))
    assert np.array_equal(np.asarray(batch.ctf.voltage), np.full(9, 300, np.float32))
    assert np.array_equal(np.asarray(batch.ctf.scale), np.ones(9, np.float32))
    assert batch.indices.dtype == jnp.int32 and np.array_equal(
        np.asarray(batch.indices), np.arange(9)
    )
    assert np.array_equal(np.asarray(batch.valid), np.ones(9))
    assert ds.table.particles["cryoensembleStructureIndex"].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0]


def test_one_based_indexing(tmp_path):
    imgs = np.stack([np.full((BOX, BOX), i, np.float32) for i in range(4)])
    _stack(tmp_path / "s.mrcs", imgs)
    names = ["000001@s.mrcs", "000004@s.mrcs", "2@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star", (_optics(), _particles(names, np.random.default_rng(0)))
    )
    ds = ParticleDataset(star)
    got = np.asarray(ds.batch([0, 1, 2]).images)[:, 0, 0]
    assert got.tolist() == [0.0, 3.0, 1.0]  # 000001 is the first image in the stack


def test_batch_order_arbitrary_indices(project):
    star, expected, _ = project
    ds = ParticleDataset(star)
    idx = [8, 0, 8, 3, 5]
    b = ds.batch(idx)
    assert np.array_equal(np.asarray(b.images), expected[idx])
    assert np.asarray(b.indices).tolist() == idx


def test_relative_paths_from_other_cwd(project, tmp_path, monkeypatch):
    star, expected, _ = project
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # Particles/ is not here: found next to the STAR file
    ds = ParticleDataset(star)
    assert all(p.is_relative_to(star.parent) for p in ds.stack_paths)
    assert np.array_equal(np.asarray(ds.batch(range(9)).images), expected)


def test_relative_paths_cwd_first(project, tmp_path, monkeypatch):
    star, expected, _ = project
    cwd = tmp_path / "cwd"
    # a different stack with the same relative name in the working directory wins (RELION)
    _stack(cwd / "Particles" / "a.mrcs", np.full((7, BOX, BOX), 5.0, np.float32))
    _stack(cwd / "Particles" / "b.mrcs", np.full((5, BOX, BOX), -5.0, np.float32))
    monkeypatch.chdir(cwd)
    ds = ParticleDataset(star)
    got = np.asarray(ds.batch([0, 1]).images)
    assert (got[0] == 5).all() and (got[1] == -5).all()


def test_iter_batches_cover_all_once(project):
    star, expected, _ = project
    ds = ParticleDataset(star)
    seen, sizes = [], []
    for b in ds.iter_batches(4):
        sizes.append(len(b))
        assert b.images.shape[0] <= 4
        seen.extend(np.asarray(b.indices).tolist())
        assert np.array_equal(np.asarray(b.images), expected[np.asarray(b.indices)])
    assert sizes == [4, 4, 1]
    assert seen == list(range(9))


def test_iter_batches_subset_and_padding(project):
    star, expected, _ = project
    ds = ParticleDataset(star)
    batches = list(ds.iter_batches(2, indices=[7, 2, 5], pad_to=2))
    assert [b.images.shape for b in batches] == [(2, BOX, BOX), (2, BOX, BOX)]
    assert np.asarray(batches[0].indices).tolist() == [7, 2]
    assert np.asarray(batches[1].indices).tolist() == [5, 5]
    assert np.asarray(batches[1].valid).tolist() == [1.0, 0.0]
    assert np.array_equal(np.asarray(batches[1].images), expected[[5, 5]])
    total = sum(b.n_valid for b in ds.iter_batches(4, pad_to=4))
    assert total == 9
    with pytest.raises(InputError, match="pad_to"):
        list(ds.iter_batches(4, pad_to=2))
    with pytest.raises(InputError, match="batch_size"):
        list(ds.iter_batches(0))


def test_batch_is_a_jittable_pytree(project):
    star, _, _ = project
    ds = ParticleDataset(star)

    @eqx.filter_jit
    def f(b):
        return jnp.sum(b.images * b.valid[:, None, None]) + jnp.sum(b.ctf.defocus_u * b.valid)

    shapes = set()
    for b in ds.iter_batches(4, pad_to=4):
        shapes.add(jax.tree_util.tree_structure(b))
        f(b)
    assert len(shapes) == 1


def test_invert_contrast(project):
    star, expected, _ = project
    ds = ParticleDataset(star, invert_contrast=True)
    assert np.array_equal(np.asarray(ds.batch([0, 4]).images), -expected[[0, 4]])


def test_index_out_of_range(project):
    star, _, _ = project
    ds = ParticleDataset(star)
    with pytest.raises(InputError, match="p.star.*out of range"):
        ds.batch([9])


# -------------------------------------------------------------------------------- errors
def test_error_missing_stack(tmp_path):
    _stack(tmp_path / "s.mrcs", np.zeros((2, BOX, BOX), np.float32))
    names = ["000001@s.mrcs", "000001@gone.mrcs"]
    star = write_particles(
        tmp_path / "p.star", (_optics(), _particles(names, np.random.default_rng(0)))
    )
    with pytest.raises(InputError, match=r"p.star.*row 2.*gone.mrcs not found"):
        ParticleDataset(star)


def test_error_index_beyond_stack(tmp_path):
    _stack(tmp_path / "s.mrcs", np.zeros((3, BOX, BOX), np.float32))
    names = ["000001@s.mrcs", "000004@s.mrcs", "000002@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star", (_optics(), _particles(names, np.random.default_rng(0)))
    )
    with pytest.raises(InputError, match=r"p.star.*row 2.*image 4.*s.mrcs.*3 images"):
        ParticleDataset(star)


def test_error_image_size_mismatch(tmp_path):
    _stack(tmp_path / "s.mrcs", np.zeros((2, BOX, BOX), np.float32))
    names = ["000001@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star", (_optics(size=16), _particles(names, np.random.default_rng(0)))
    )
    with pytest.raises(InputError, match=rf"s.mrcs.*{BOX} x {BOX}.*rlnImageSize.*p.star.*16"):
        ParticleDataset(star)


def test_error_inconsistent_image_sizes_between_groups(tmp_path):
    optics = _optics(px=(1.3, 1.3))
    optics["rlnImageSize"] = [BOX, 2 * BOX]
    names = ["000001@s.mrcs", "000002@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star", (optics, _particles(names, np.random.default_rng(0), [1, 2]))
    )
    with pytest.raises(InputError, match="p.star.*rlnImageSize"):
        ParticleDataset(star)


def test_error_different_pixel_sizes(tmp_path):
    _stack(tmp_path / "s.mrcs", np.zeros((2, BOX, BOX), np.float32))
    names = ["000001@s.mrcs", "000002@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star",
        (_optics(px=(1.3, 1.5)), _particles(names, np.random.default_rng(0), [1, 2])),
    )
    with pytest.raises(InputError, match="p.star.*rlnImagePixelSize.*1.3.*1.5"):
        ParticleDataset(star)


def test_same_pixel_size_several_groups_ok(tmp_path):
    _stack(tmp_path / "s.mrcs", np.zeros((2, BOX, BOX), np.float32))
    names = ["000001@s.mrcs", "000002@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star",
        (_optics(px=(1.3, 1.3)), _particles(names, np.random.default_rng(0), [1, 2])),
    )
    assert ParticleDataset(star).pixel_size == pytest.approx(1.3)


def test_error_truncated_stack(tmp_path):
    p = _stack(tmp_path / "s.mrcs", np.zeros((4, BOX, BOX), np.float32))
    p.write_bytes(p.read_bytes()[:-100])
    names = ["000001@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star", (_optics(), _particles(names, np.random.default_rng(0)))
    )
    with pytest.raises(InputError, match="s.mrcs.*truncated"):
        ParticleDataset(star)


def test_error_stack_not_mrc(tmp_path):
    (tmp_path / "s.mrcs").write_bytes(b"garbage" * 400)
    names = ["000001@s.mrcs"]
    star = write_particles(
        tmp_path / "p.star", (_optics(), _particles(names, np.random.default_rng(0)))
    )
    with pytest.raises(InputError, match="s.mrcs"):
        ParticleDataset(star)


def test_error_missing_star(tmp_path):
    with pytest.raises(InputError, match="none.star.*not found"):
        ParticleDataset(tmp_path / "none.star")


# -------------------------------------------------------------------------------- micrographs
def _with_micrographs(tmp_path, mics, px=(1.3,), groups=None):
    _stack(tmp_path / "s.mrcs", np.zeros((len(mics), BOX, BOX), np.float32))
    names = [format_image_name(i + 1, "s.mrcs") for i in range(len(mics))]
    particles = _particles(names, np.random.default_rng(0), groups)
    particles["rlnMicrographName"] = mics
    return write_particles(tmp_path / "p.star", (_optics(px=px), particles))


@pytest.mark.parametrize("missing", ["", ".", "None"])
def test_error_micrograph_name_missing_for_some_particles(tmp_path, missing):
    star = _with_micrographs(tmp_path, ["m1.mrc", "m1.mrc", missing, "m2.mrc", missing])
    with pytest.raises(
        InputError, match=r"p.star: column rlnMicrographName, row 3: no micrograph name.*2 of 5"
    ):
        ParticleDataset(star)


def test_micrograph_names_all_missing_is_like_no_column(tmp_path):
    star = _with_micrographs(tmp_path, ["", "", ""])
    assert len(ParticleDataset(star)) == 3


def test_error_micrograph_in_groups_with_different_pixel_sizes(tmp_path):
    star = _with_micrographs(tmp_path, ["m1.mrc", "m1.mrc", "m2.mrc"], (1.3, 1.5), [1, 2, 1])
    with pytest.raises(
        InputError,
        match=r"p.star: column rlnMicrographName: micrograph m1.mrc is in optics groups that "
        r"disagree \(group 1: rlnImagePixelSize 1.3, group 2: rlnImagePixelSize 1.5\)",
    ):
        ParticleDataset(star)


def test_micrograph_in_two_groups_with_the_same_optics_ok(tmp_path):
    star = _with_micrographs(tmp_path, ["m1.mrc", "m1.mrc", "m2.mrc"], (1.3, 1.3), [1, 2, 2])
    ds = ParticleDataset(star)
    assert ds.table.particles["rlnMicrographName"].tolist() == ["m1.mrc", "m1.mrc", "m2.mrc"]
