"""RELION STAR files: 3.1 round trips, RELION 3.0 conversion, defaults, and every bad-input error."""

from __future__ import annotations

import textwrap

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from cryoensemble.errors import InputError
from cryoensemble.io import (
    OPTICS_COLUMNS,
    PARTICLE_COLUMNS,
    MrcStackWriter,
    ParticleTable,
    format_image_name,
    parse_image_name,
    particle_arrays,
    read_particles,
    write_particles,
)
from cryoensemble.pose import euler_to_matrix


def _frames(n=6, rng=None, groups=(1, 2)):
    rng = rng or np.random.default_rng(0)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": list(groups),
            "rlnOpticsGroupName": [f"og{g}" for g in groups],
            "rlnVoltage": [300.0, 200.0][: len(groups)],
            "rlnSphericalAberration": [2.7, 1.4][: len(groups)],
            "rlnAmplitudeContrast": [0.1, 0.07][: len(groups)],
            "rlnImagePixelSize": [1.1, 1.1][: len(groups)],
            "rlnImageSize": [16, 16][: len(groups)],
        }
    )
    particles = pd.DataFrame(
        {
            "rlnImageName": [format_image_name(i + 1, "Particles/stack.mrcs") for i in range(n)],
            "rlnAngleRot": rng.uniform(-180, 180, n),
            "rlnAngleTilt": rng.uniform(0, 180, n),
            "rlnAnglePsi": rng.uniform(-180, 180, n),
            "rlnOriginXAngst": rng.normal(size=n) * 3,
            "rlnOriginYAngst": rng.normal(size=n) * 3,
            "rlnDefocusU": rng.uniform(8000, 20000, n),
            "rlnDefocusV": rng.uniform(8000, 20000, n),
            "rlnDefocusAngle": rng.uniform(-90, 90, n),
            "rlnPhaseShift": rng.uniform(0, 90, n),
            "rlnCtfBfactor": rng.uniform(0, 50, n),
            "rlnCtfScalefactor": rng.uniform(0.5, 1, n),
            "rlnOpticsGroup": [groups[i % len(groups)] for i in range(n)],
            "cryoensembleStructureIndex": np.arange(n) % 3,
            "cryoensembleSNR": rng.uniform(0, 1, n),
        }
    )
    return optics, particles


def _write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# ------------------------------------------------------------------------------------ names
def test_image_names():
    assert format_image_name(1, "a/b.mrcs") == "000001@a/b.mrcs"
    assert format_image_name(1234567, "s.mrcs") == "1234567@s.mrcs"
    assert parse_image_name("000012@Particles/a.mrcs") == (12, "Particles/a.mrcs")
    assert parse_image_name("3@x.mrc:mrcs") == (3, "x.mrc")
    for bad in ["a.mrcs", "@a.mrcs", "x1@a.mrcs", "000000@a.mrcs", "1@", "", 5]:
        with pytest.raises(InputError):
            parse_image_name(bad)
    for bad in [0, -1, 1.5]:
        with pytest.raises(InputError):
            format_image_name(bad, "s.mrcs")


# ------------------------------------------------------------------------------ round trip
def test_round_trip_bit_exact(tmp_path):
    optics, particles = _frames()
    p = write_particles(tmp_path / "p.star", (optics, particles))
    t = read_particles(p)
    assert isinstance(t, ParticleTable) and len(t) == 6
    assert list(t.optics.columns)[: len(OPTICS_COLUMNS)] == OPTICS_COLUMNS
    assert list(t.particles.columns)[: len(PARTICLE_COLUMNS)] == PARTICLE_COLUMNS
    for col in particles.columns:
        a, b = t.particles[col].to_numpy(), particles[col].to_numpy()
        assert np.array_equal(a, b), col  # bit-for-bit, float64 included
    for col in optics.columns:
        assert np.array_equal(t.optics[col].to_numpy(), optics[col].to_numpy()), col
    assert (t.optics["rlnImageDimensionality"] == 2).all()
    assert t.extra_columns() == ["cryoensembleStructureIndex", "cryoensembleSNR"]
    assert t.particles["cryoensembleStructureIndex"].dtype.kind == "i"
    # the table itself writes back identically
    p2 = write_particles(tmp_path / "p2.star", t)
    t2 = read_particles(p2)
    pd.testing.assert_frame_equal(t2.particles, t.particles)
    pd.testing.assert_frame_equal(t2.optics, t.optics)
    text = p.read_text()
    assert "data_optics" in text and "data_particles" in text and "# version 30001" in text
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_write_dict_and_overwrite(tmp_path):
    optics, particles = _frames()
    p = write_particles(tmp_path / "p.star", {"optics": optics, "particles": particles})
    with pytest.raises(InputError, match="p.star.*exists"):
        write_particles(p, (optics, particles))
    write_particles(p, (optics, particles.iloc[:2]), overwrite=True)
    assert len(read_particles(p)) == 2


def test_write_pads_image_names_to_six_digits(tmp_path):
    optics, particles = _frames(n=2)
    particles["rlnImageName"] = ["1@s.mrcs", "1234567@s.mrcs"]
    t = read_particles(write_particles(tmp_path / "p.star", (optics, particles)))
    assert t.particles["rlnImageName"].tolist() == ["000001@s.mrcs", "1234567@s.mrcs"]
    assert particles["rlnImageName"].tolist() == ["1@s.mrcs", "1234567@s.mrcs"]  # input untouched


def test_write_validates(tmp_path):
    optics, particles = _frames()
    particles.loc[2, "rlnImageName"] = "stack.mrcs"
    with pytest.raises(InputError, match="bad.star.*rlnImageName.*row 3"):
        write_particles(tmp_path / "bad.star", (optics, particles))
    assert not (tmp_path / "bad.star").exists()


def test_defaults_filled(tmp_path):
    p = _write(
        tmp_path / "min.star",
        """
        data_optics
        loop_
        _rlnOpticsGroup
        _rlnVoltage
        _rlnSphericalAberration
        _rlnAmplitudeContrast
        _rlnImagePixelSize
        _rlnImageSize
        1 300 2.7 0.1 1.5 32

        data_particles
        loop_
        _rlnImageName
        _rlnDefocusU
        000001@s.mrcs 12000
        000002@s.mrcs 13000
        """,
    )
    t = read_particles(p)
    pp = t.particles
    assert np.array_equal(pp["rlnDefocusV"], pp["rlnDefocusU"])
    for col, v in [
        ("rlnDefocusAngle", 0),
        ("rlnPhaseShift", 0),
        ("rlnCtfBfactor", 0),
        ("rlnCtfScalefactor", 1),
        ("rlnOriginXAngst", 0),
        ("rlnOriginYAngst", 0),
        ("rlnAngleRot", 0),
        ("rlnOpticsGroup", 1),
    ]:
        assert (pp[col] == v).all(), col
    assert t.optics["rlnOpticsGroupName"].tolist() == ["opticsGroup1"]
    with pytest.raises(InputError, match="min.star.*rlnAngleRot"):
        read_particles(p, require_poses=True)


def test_missing_optics_values_default_like_relion(tmp_path):
    p = _write(
        tmp_path / "noq0.star",
        """
        data_optics
        loop_
        _rlnOpticsGroup
        _rlnImagePixelSize
        _rlnImageSize
        1 1.5 32

        data_particles
        loop_
        _rlnImageName
        _rlnDefocusU
        000001@s.mrcs 12000
        """,
    )
    with pytest.warns(UserWarning, match="rlnVoltage"):
        t = read_particles(p)
    o = t.optics.iloc[0]
    assert (o["rlnVoltage"], o["rlnSphericalAberration"], o["rlnAmplitudeContrast"]) == (200, 0, 0)


def test_pixel_origins_ignored_with_optics(tmp_path):
    p = _write(
        tmp_path / "pix.star",
        """
        data_optics
        loop_
        _rlnOpticsGroup
        _rlnVoltage
        _rlnSphericalAberration
        _rlnAmplitudeContrast
        _rlnImagePixelSize
        _rlnImageSize
        1 300 2.7 0.1 2.0 32

        data_particles
        loop_
        _rlnImageName
        _rlnDefocusU
        _rlnOriginX
        _rlnOriginY
        000001@s.mrcs 12000 3 4
        """,
    )
    with pytest.warns(UserWarning, match="ignored"):
        t = read_particles(p)
    assert (
        t.particles["rlnOriginXAngst"].iloc[0] == 0 and t.particles["rlnOriginYAngst"].iloc[0] == 0
    )
    assert "rlnOriginX" not in t.particles.columns


# ----------------------------------------------------------------------------- RELION 3.0
def test_relion30_conversion(tmp_path):
    (tmp_path / "Particles").mkdir()
    with MrcStackWriter(tmp_path / "Particles" / "s.mrcs", 24, 1.0) as w:
        w.append(np.zeros((3, 24, 24)))
    p = _write(
        tmp_path / "old.star",
        """
        # RELION; version 3.0

        data_

        loop_
        _rlnImageName #1
        _rlnMicrographName #2
        _rlnDefocusU #3
        _rlnDefocusV #4
        _rlnDefocusAngle #5
        _rlnVoltage #6
        _rlnSphericalAberration #7
        _rlnAmplitudeContrast #8
        _rlnMagnification #9
        _rlnDetectorPixelSize #10
        _rlnAngleRot #11
        _rlnAngleTilt #12
        _rlnAnglePsi #13
        _rlnOriginX #14
        _rlnOriginY #15
        000001@Particles/s.mrcs mic1.mrc 10000 11000 30 300 2.7 0.1 50000 7.0 10 20 30 1.5 -2.0
        000002@Particles/s.mrcs mic1.mrc 12000 12500 40 300 2.7 0.1 50000 7.0 11 21 31 0.0 4.0
        000003@Particles/s.mrcs mic2.mrc 13000 13500 50 200 2.0 0.07 50000 7.0 12 22 32 -3.0 0.5
        """,
    )
    t = read_particles(p)
    px = 7.0 * 1e4 / 50000  # 1.4 A
    assert len(t.optics) == 2
    o = t.optics
    assert o["rlnOpticsGroup"].tolist() == [1, 2]
    assert o["rlnVoltage"].tolist() == [300, 200]
    assert o["rlnSphericalAberration"].tolist() == [2.7, 2.0]
    assert o["rlnAmplitudeContrast"].tolist() == [0.1, 0.07]
    assert np.allclose(o["rlnImagePixelSize"], px)
    assert o["rlnImageSize"].tolist() == [24, 24]  # read from the stack header
    pp = t.particles
    assert pp["rlnOpticsGroup"].tolist() == [1, 1, 2]
    assert np.allclose(pp["rlnOriginXAngst"], np.array([1.5, 0.0, -3.0]) * px)
    assert np.allclose(pp["rlnOriginYAngst"], np.array([-2.0, 4.0, 0.5]) * px)
    for gone in [
        "rlnOriginX",
        "rlnOriginY",
        "rlnVoltage",
        "rlnMagnification",
        "rlnDetectorPixelSize",
    ]:
        assert gone not in pp.columns
    assert pp["rlnMicrographName"].tolist() == ["mic1.mrc", "mic1.mrc", "mic2.mrc"]
    # converted table writes as 3.1 and reads back the same
    t2 = read_particles(write_particles(tmp_path / "new.star", t))
    pd.testing.assert_frame_equal(t2.particles, t.particles)
    pd.testing.assert_frame_equal(t2.optics, t.optics)


def test_relion30_image_pixel_size_and_size(tmp_path):
    p = _write(
        tmp_path / "old2.star",
        """
        data_images
        loop_
        _rlnImageName
        _rlnDefocusU
        _rlnVoltage
        _rlnSphericalAberration
        _rlnAmplitudeContrast
        _rlnImagePixelSize
        _rlnImageSize
        _rlnOriginX
        _rlnOriginY
        1@s.mrcs 10000 300 2.7 0.1 2.5 64 2 -1
        """,
    )
    t = read_particles(p)
    assert t.optics["rlnImagePixelSize"].tolist() == [2.5]
    assert t.optics["rlnImageSize"].tolist() == [64]
    assert t.particles["rlnOriginXAngst"].tolist() == [5.0]
    assert t.particles["rlnOriginYAngst"].tolist() == [-2.5]


def test_relion30_without_pixel_size(tmp_path):
    p = _write(
        tmp_path / "nopx.star",
        """
        data_
        loop_
        _rlnImageName
        _rlnDefocusU
        1@s.mrcs 10000
        """,
    )
    with pytest.raises(InputError, match="nopx.star.*pixel size"):
        read_particles(p)


def test_relion30_image_size_stack_missing(tmp_path):
    p = _write(
        tmp_path / "nosize.star",
        """
        data_
        loop_
        _rlnImageName
        _rlnDefocusU
        _rlnImagePixelSize
        1@missing.mrcs 10000 1.0
        """,
    )
    with pytest.raises(InputError, match="nosize.star.*rlnImageSize.*missing.mrcs"):
        with pytest.warns(
            UserWarning, match="rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast"
        ):
            read_particles(p)


# ------------------------------------------------------------------------------ errors
def _good_text(
    particle_rows="000001@s.mrcs 12000 1\n",
    particle_cols=("rlnImageName", "rlnDefocusU", "rlnOpticsGroup"),
):
    cols = "\n".join(f"_{c}" for c in particle_cols)
    return (
        "data_optics\nloop_\n_rlnOpticsGroup\n_rlnVoltage\n_rlnSphericalAberration\n"
        "_rlnAmplitudeContrast\n_rlnImagePixelSize\n_rlnImageSize\n1 300 2.7 0.1 1.5 32\n\n"
        f"data_particles\nloop_\n{cols}\n{particle_rows}"
    )


def test_error_missing_file(tmp_path):
    with pytest.raises(InputError, match="nothere.star.*not found"):
        read_particles(tmp_path / "nothere.star")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_error_empty_file(tmp_path, content):
    p = tmp_path / "empty.star"
    p.write_text(content)
    with pytest.raises(InputError, match="empty.star.*empty"):
        read_particles(p)


def test_error_no_blocks(tmp_path):
    p = tmp_path / "text.star"
    p.write_text("hello world\n")
    with pytest.raises(InputError, match="text.star.*no data_"):
        read_particles(p)


def test_error_no_particle_block(tmp_path):
    p = tmp_path / "optonly.star"
    p.write_text(_good_text().split("data_particles")[0])
    with pytest.raises(InputError, match="optonly.star.*no data_particles"):
        read_particles(p)
    q = tmp_path / "other.star"
    q.write_text("data_model_general\n_rlnNrClasses 1\n\ndata_stuff\nloop_\n_rlnFoo\n1\n")
    with pytest.raises(InputError, match="other.star.*no particle block"):
        read_particles(q)


@pytest.mark.parametrize("missing", ["rlnImageName", "rlnDefocusU"])
def test_error_missing_required_column(tmp_path, missing):
    cols = [c for c in ("rlnImageName", "rlnDefocusU", "rlnOpticsGroup") if c != missing]
    row = {"rlnImageName": "000001@s.mrcs", "rlnDefocusU": "12000", "rlnOpticsGroup": "1"}
    p = tmp_path / "nocol.star"
    p.write_text(_good_text(" ".join(row[c] for c in cols) + "\n", cols))
    with pytest.raises(InputError, match=f"nocol.star.*{missing}"):
        read_particles(p)


def test_error_missing_angles_with_require_poses(tmp_path):
    p = tmp_path / "noang.star"
    p.write_text(
        _good_text(
            "000001@s.mrcs 12000 1 10 20\n",
            ("rlnImageName", "rlnDefocusU", "rlnOpticsGroup", "rlnAngleRot", "rlnAngleTilt"),
        )
    )
    read_particles(p)  # fine without poses required
    with pytest.raises(InputError, match="noang.star.*rlnAnglePsi"):
        read_particles(p, require_poses=True)


def test_error_unknown_optics_group(tmp_path):
    p = tmp_path / "og.star"
    p.write_text(_good_text("000001@s.mrcs 12000 1\n000002@s.mrcs 12000 3\n"))
    with pytest.raises(InputError, match=r"og.star.*rlnOpticsGroup.*row 2.*line 17.*group 3"):
        read_particles(p)


def test_error_non_numeric(tmp_path):
    p = tmp_path / "nan.star"
    p.write_text(_good_text("000001@s.mrcs 12000 1\n000002@s.mrcs 1.2e4 1\n000003@s.mrcs abc 1\n"))
    with pytest.raises(InputError, match=r"nan.star.*rlnDefocusU.*row 3.*line 18.*'abc'"):
        read_particles(p)


def test_error_non_finite(tmp_path):
    p = tmp_path / "inf.star"
    p.write_text(_good_text("000001@s.mrcs nan 1\n"))
    with pytest.raises(InputError, match=r"inf.star.*rlnDefocusU.*row 1"):
        read_particles(p)


def test_error_non_numeric_optics(tmp_path):
    p = tmp_path / "opt.star"
    p.write_text(_good_text().replace("1 300 2.7", "1 3OO 2.7"))
    with pytest.raises(InputError, match=r"opt.star.*rlnVoltage.*row 1 of data_optics.*line 9"):
        read_particles(p)


def test_error_non_integer_optics_group(tmp_path):
    p = tmp_path / "ogf.star"
    p.write_text(_good_text("000001@s.mrcs 12000 1.5\n"))
    with pytest.raises(InputError, match=r"ogf.star.*rlnOpticsGroup.*integer"):
        read_particles(p)


@pytest.mark.parametrize("name", ["s.mrcs", "0@s.mrcs", "abc@s.mrcs", "000001s.mrcs"])
def test_error_bad_image_name(tmp_path, name):
    p = tmp_path / "names.star"
    p.write_text(_good_text(f"000001@s.mrcs 12000 1\n{name} 12000 1\n"))
    with pytest.raises(InputError, match=r"names.star.*rlnImageName.*row 2.*NNNNNN@path"):
        read_particles(p)


def test_error_ragged_row(tmp_path):
    p = tmp_path / "ragged.star"
    p.write_text(_good_text("000001@s.mrcs 12000 1\n000002@s.mrcs 12000 1 7 8\n"))
    with pytest.raises(InputError, match="ragged.star"):
        read_particles(p)


def test_error_bad_pixel_size(tmp_path):
    p = tmp_path / "px.star"
    p.write_text(_good_text().replace("0.1 1.5 32", "0.1 0 32"))
    with pytest.raises(InputError, match="px.star.*rlnImagePixelSize"):
        read_particles(p)


# ------------------------------------------------------------------------------ arrays
def test_particle_arrays(tmp_path):
    optics, particles = _frames(n=5)
    t = read_particles(write_particles(tmp_path / "p.star", (optics, particles)))
    a = particle_arrays(t, [4, 1, 2])
    idx = [4, 1, 2]
    f32 = lambda c: particles[c].to_numpy(np.float32)[idx]
    assert a["rotations"].shape == (3, 3, 3) and a["rotations"].dtype == jnp.float32
    ref = euler_to_matrix(
        jnp.asarray(f32("rlnAngleRot")),
        jnp.asarray(f32("rlnAngleTilt")),
        jnp.asarray(f32("rlnAnglePsi")),
    )
    assert np.array_equal(np.asarray(a["rotations"]), np.asarray(ref))
    assert np.array_equal(
        np.asarray(a["shifts"]), np.stack([f32("rlnOriginXAngst"), f32("rlnOriginYAngst")], -1)
    )
    ctf = a["ctf"]
    assert np.array_equal(np.asarray(ctf.defocus_u), f32("rlnDefocusU"))
    assert np.array_equal(np.asarray(ctf.defocus_v), f32("rlnDefocusV"))
    assert np.array_equal(np.asarray(ctf.defocus_angle), f32("rlnDefocusAngle"))
    assert np.array_equal(np.asarray(ctf.phase_shift), f32("rlnPhaseShift"))
    assert np.array_equal(np.asarray(ctf.b_factor), f32("rlnCtfBfactor"))
    assert np.array_equal(np.asarray(ctf.scale), f32("rlnCtfScalefactor"))
    # particles 4, 1, 2 are in optics groups 1, 2, 1
    assert np.array_equal(np.asarray(ctf.voltage), np.float32([300, 200, 300]))
    assert np.array_equal(np.asarray(ctf.spherical_aberration), np.float32([2.7, 1.4, 2.7]))
    assert np.array_equal(np.asarray(ctf.amplitude_contrast), np.float32([0.1, 0.07, 0.1]))
    assert particle_arrays(t)["shifts"].shape == (5, 2)
    with pytest.raises(InputError, match="p.star.*out of range"):
        particle_arrays(t, [5])


RELION5_STAR = """
# version 50001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographOriginalPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
_rlnAmplitudeContrast #6
_rlnImagePixelSize #7
_rlnImageSize #8
_rlnImageDimensionality #9
_rlnCtfDataAreCtfPremultiplied #10
opticsGroup1            1     0.830000   300.000000     2.700000     0.100000     1.660000     8     2     0
opticsGroup2            2     0.830000   200.000000     1.400000     0.070000     1.660000     8     2     0

# version 50001

data_particles

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnAngleRot #3
_rlnAngleTilt #4
_rlnAnglePsi #5
_rlnImageName #6
_rlnMicrographName #7
_rlnOpticsGroup #8
_rlnCtfMaxResolution #9
_rlnCtfFigureOfMerit #10
_rlnDefocusU #11
_rlnDefocusV #12
_rlnDefocusAngle #13
_rlnCtfBfactor #14
_rlnCtfScalefactor #15
_rlnPhaseShift #16
_rlnGroupNumber #17
_rlnClassNumber #18
_rlnOriginXAngst #19
_rlnOriginYAngst #20
_rlnNormCorrection #21
_rlnLogLikeliContribution #22
_rlnMaxValueProbDistribution #23
_rlnNrOfSignificantSamples #24
_rlnRandomSubset #25
 1318.000000  2016.000000   -61.305434   116.227310   -45.437190 000001@Extract/job012/Movies/mic_001.mrcs MotionCorr/job002/Movies/mic_001.mrc            1     3.650000     0.138890 12046.730469 11741.660156    15.200000     0.000000     1.000000     0.000000            1            1    -1.316250     2.983750     0.854910 8.637420e+05     0.325330            4            1
  994.000000  1532.000000   147.886742    62.104561   112.004700 000002@Extract/job012/Movies/mic_001.mrcs MotionCorr/job002/Movies/mic_001.mrc            2     3.650000     0.138890 12046.730469 11741.660156    15.200000    25.000000     0.800000    10.000000            1            1     0.343750    -0.996250     0.861172 8.636150e+05     0.144540           10            2
"""


def test_relion5_particle_star(tmp_path):
    """A RELION 5 Refine3D particle file (2-D data, no rlnTomo* columns) reads like 3.1."""
    star = _write(tmp_path / "run_data.star", RELION5_STAR)
    t = read_particles(star, require_poses=True)
    assert len(t) == 2 and list(t.optics.columns[: len(OPTICS_COLUMNS)]) == OPTICS_COLUMNS
    assert t.optics["rlnImagePixelSize"].tolist() == [1.66, 1.66]
    assert t.optics["rlnImageSize"].tolist() == [8, 8]
    assert t.optics["rlnVoltage"].tolist() == [300.0, 200.0]
    assert t.optics["rlnCtfDataAreCtfPremultiplied"].tolist() == [0, 0]  # kept as extra
    p = t.particles
    assert list(p.columns[: len(PARTICLE_COLUMNS)]) == PARTICLE_COLUMNS
    assert p["rlnOriginXAngst"].tolist() == [-1.31625, 0.34375]
    assert p["rlnAnglePsi"].tolist() == [-45.43719, 112.0047]
    assert p["rlnCtfBfactor"].tolist() == [0.0, 25.0] and p["rlnPhaseShift"].tolist() == [0, 10]
    assert "rlnMicrographName" in t.extra_columns() and "rlnRandomSubset" in t.extra_columns()
    assert t.pixel_sizes().tolist() == [1.66, 1.66]
    assert t.image_locations()[0].tolist() == [1, 2]
    arrays = particle_arrays(t)
    np.testing.assert_allclose(arrays["ctf"].voltage, [300.0, 200.0])
    np.testing.assert_allclose(arrays["shifts"][1], [0.34375, -0.99625], rtol=1e-6)
    # written back as 3.1 and read again: the same table, extra columns included
    back = read_particles(write_particles(tmp_path / "back.star", t))
    pd.testing.assert_frame_equal(back.particles, t.particles)
    pd.testing.assert_frame_equal(back.optics, t.optics)
