"""cryoSPARC ``.cs`` particle files: the same particles through ``.cs`` and through STAR give the
same rotations, shifts, CTF, images and likelihood matrix; bad input gets one clear line.

The ``.cs`` file is written from a simulated RELION dataset by a conversion written here,
independently of the reader (scipy for the rotations): cryoSPARC's ``alignments3D/pose`` is the
rotation vector of the transpose of RELION's matrix, shifts are RELION's origins in pixels, angles
are in radians and ``blob/idx`` counts from 0 (pyem's ``csparc2star`` conventions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryoensemble.errors import InputError
from cryoensemble.imaging import ImagingConfig
from cryoensemble.inference import likelihood_matrix
from cryoensemble.io import (
    ParticleDataset,
    cryosparc_pose_to_euler,
    parse_image_name,
    read_cryosparc,
    read_particles,
)
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure
from cryoensemble.workflows.simulate import SimulateConfig
from cryoensemble.workflows.simulate import run as simulate

N_PARTICLES, BOX, PX = 20, 32, 3.0


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, data_dir_module):
    """A simulated RELION dataset (20 particles, box 32) in a 'project' folder."""
    folder = tmp_path_factory.mktemp("base") / "project"
    config = SimulateConfig(
        n_particles=N_PARTICLES,
        box_size=BOX,
        pixel_size=PX,
        structures=[data_dir_module / "adk_open.pdb", data_dir_module / "adk_closed.pdb"],
        weights=[1, 1],
        phase_shift=20.0,
        ctf_b_factor=15.0,
        snr=0.5,
        seed=7,
    )
    assert simulate(config, folder).star_path == folder / "particles.star"
    return folder


@pytest.fixture(scope="module")
def data_dir_module():
    return Path(__file__).resolve().parents[2] / "src" / "cryoensemble" / "data"


def _star_to_cs_fields(star: Path) -> dict[str, np.ndarray]:
    """cryoSPARC fields of the particles of ``star``, converted here independently."""
    table = read_particles(star)
    p, o = table.particles, table.optics
    rows = table.optics_rows()
    px = o["rlnImagePixelSize"].to_numpy()[rows]
    n = len(p)
    # RELION's A = Rz(-psi) Ry(-tilt) Rz(-rot); A^T is scipy's intrinsic ZYZ (rot, tilt, psi).
    angles = p[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy()
    pose = Rotation.from_euler("ZYZ", angles, degrees=True).as_rotvec()
    origins = p[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy()
    index, stacks = zip(*(parse_image_name(s) for s in p["rlnImageName"]), strict=True)
    f4 = lambda x: np.asarray(x, "<f4")
    return {
        "uid": np.arange(1000, 1000 + n, dtype="<u8"),
        "blob/path": np.array([f">{s}".encode() for s in stacks], dtype="S64"),
        "blob/idx": np.asarray(index, "<u4") - 1,
        "blob/shape": np.tile(np.array([BOX, BOX], "<u4"), (n, 1)),
        "blob/psize_A": f4(px),
        "ctf/accel_kv": f4(o["rlnVoltage"].to_numpy()[rows]),
        "ctf/cs_mm": f4(o["rlnSphericalAberration"].to_numpy()[rows]),
        "ctf/amp_contrast": f4(o["rlnAmplitudeContrast"].to_numpy()[rows]),
        "ctf/df1_A": f4(p["rlnDefocusU"]),
        "ctf/df2_A": f4(p["rlnDefocusV"]),
        "ctf/df_angle_rad": f4(np.deg2rad(p["rlnDefocusAngle"])),
        "ctf/phase_shift_rad": f4(np.deg2rad(p["rlnPhaseShift"])),
        "ctf/bfactor": f4(p["rlnCtfBfactor"]),
        "alignments3D/pose": f4(pose),
        "alignments3D/shift": f4(origins / px[:, None]),
        "alignments3D/psize_A": f4(px),
    }


def _write_cs(path: Path, fields: dict[str, np.ndarray]) -> Path:
    """Save ``fields`` as a cryoSPARC-style structured array (``np.save``, then renamed)."""
    n = len(next(iter(fields.values())))
    dtype = [(k, v.dtype, v.shape[1:]) for k, v in fields.items()]
    data = np.empty(n, dtype=dtype)
    for k, v in fields.items():
        data[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # np.save(path) would append .npy
        np.save(f, data)
    return path


@pytest.fixture(scope="module")
def cs_file(simulated):
    """The .cs of the simulated particles, in a job folder J7/ of the project."""
    return _write_cs(
        simulated / "J7" / "particles.cs", _star_to_cs_fields(simulated / "particles.star")
    )


def test_cs_and_star_give_the_same_particles(simulated, cs_file):
    star = ParticleDataset(simulated / "particles.star", require_poses=True)
    cs = ParticleDataset(cs_file, require_poses=True)
    assert len(cs) == len(star) == N_PARTICLES
    assert cs.box_size == star.box_size == BOX
    assert cs.pixel_size == pytest.approx(star.pixel_size, rel=1e-6)
    idx = np.arange(N_PARTICLES)
    a, b = star.batch(idx), cs.batch(idx)
    np.testing.assert_allclose(b.rotations, a.rotations, atol=1e-5)
    np.testing.assert_allclose(b.shifts, a.shifts, atol=1e-4)  # Angstrom, float32 pixels
    for field in [
        "defocus_u",
        "defocus_v",
        "defocus_angle",
        "voltage",
        "spherical_aberration",
        "amplitude_contrast",
        "phase_shift",
        "b_factor",
        "scale",
    ]:
        np.testing.assert_allclose(
            getattr(b.ctf, field), getattr(a.ctf, field), rtol=1e-6, atol=1e-4, err_msg=field
        )
    np.testing.assert_array_equal(b.images, a.images)


def test_cs_and_star_give_the_same_likelihood_matrix(simulated, cs_file, data_dir_module):
    models = [read_structure(data_dir_module / f"adk_{k}.pdb") for k in ("open", "closed")]
    atoms = [gaussian_atoms(m, selection="calpha", center=m.center_of_mass()) for m in models]
    config = ImagingConfig.for_atoms(atoms[0], BOX, PX)
    star = ParticleDataset(simulated / "particles.star", require_poses=True)
    cs = ParticleDataset(cs_file, require_poses=True)
    want = likelihood_matrix(star, atoms, config, batch_size=8)
    got = likelihood_matrix(cs, atoms, config, batch_size=8)
    assert got.shape == (N_PARTICLES, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_table_is_in_relion_conventions(simulated, cs_file):
    want = read_particles(simulated / "particles.star")
    got = read_cryosparc(cs_file, project_dir=simulated)
    assert got.path == cs_file.absolute()
    p, q = got.particles, want.particles
    for col in ["rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnPhaseShift"]:
        np.testing.assert_allclose(p[col], q[col], rtol=1e-6, atol=1e-4, err_msg=col)
    np.testing.assert_allclose(p["rlnOriginXAngst"], q["rlnOriginXAngst"], atol=1e-4)
    # 1-based image names pointing at the same (absolute) stacks
    for s, t in zip(p["rlnImageName"], q["rlnImageName"], strict=True):
        (i, a), (j, b) = parse_image_name(s), parse_image_name(t)
        assert i == j and Path(a) == (simulated / b)
    assert got.optics["rlnImageSize"].tolist() == [BOX]


def test_pose_conversion_matches_relion_matrix():
    rng = np.random.default_rng(3)
    angles = np.column_stack(
        [rng.uniform(-180, 180, 50), rng.uniform(1, 179, 50), rng.uniform(-180, 180, 50)]
    )
    pose = Rotation.from_euler("ZYZ", angles, degrees=True).as_rotvec()
    rot, tilt, psi = cryosparc_pose_to_euler(pose.astype(np.float32))
    back = Rotation.from_euler("ZYZ", np.column_stack([rot, tilt, psi]), degrees=True)
    np.testing.assert_allclose(back.as_matrix(), Rotation.from_rotvec(pose).as_matrix(), atol=1e-5)
    # the identity: no rotation
    r0, t0, p0 = cryosparc_pose_to_euler(np.zeros((1, 3), np.float32))
    assert abs(t0[0]) < 1e-6 and abs((r0[0] + p0[0] + 180) % 360 - 180) < 1e-5


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def fields(simulated):
    return _star_to_cs_fields(simulated / "particles.star")


def test_missing_alignments_when_poses_required(tmp_path, simulated, fields):
    for k in [k for k in fields if k.startswith("alignments3D/")]:
        del fields[k]
    path = _write_cs(simulated / "J8" / "no_poses.cs", fields)
    with pytest.raises(InputError, match=r"no_poses.cs: field alignments3D/pose is missing"):
        ParticleDataset(path, require_poses=True)
    # without the requirement the angles default to 0, as for a STAR file
    table = read_cryosparc(path)
    assert (table.particles["rlnAngleTilt"] == 0).all()


def test_missing_stack(tmp_path, fields):
    path = _write_cs(tmp_path / "J1" / "particles.cs", fields)
    with pytest.raises(InputError, match=r"particles.cs: field blob/path, row 1: .*not found"):
        read_cryosparc(path)
    read_cryosparc(path, check_stacks=False)  # the table alone can still be read


def test_non_square_blobs(tmp_path, simulated, fields):
    fields["blob/shape"][3] = [BOX, BOX + 2]
    path = _write_cs(tmp_path / "p.cs", fields)
    with pytest.raises(InputError, match=r"p.cs: field blob/shape, row 4: .*square"):
        read_cryosparc(path, project_dir=simulated)


def test_missing_ctf_field(tmp_path, simulated, fields):
    del fields["ctf/df1_A"]
    path = _write_cs(tmp_path / "p.cs", fields)
    with pytest.raises(InputError, match=r"p.cs: field ctf/df1_A is missing"):
        read_cryosparc(path, project_dir=simulated)


def test_non_finite_value(tmp_path, simulated, fields):
    fields["ctf/df2_A"][5] = np.nan
    path = _write_cs(tmp_path / "p.cs", fields)
    with pytest.raises(InputError, match=r"p.cs: field ctf/df2_A, row 6"):
        read_cryosparc(path, project_dir=simulated)


def test_index_beyond_stack(tmp_path, simulated, fields):
    fields["blob/idx"][2] = 999
    path = _write_cs(tmp_path / "p.cs", fields)
    with pytest.raises(InputError, match=r"p.cs: field blob/path, row 3 .*image 1000"):
        ParticleDataset(path, project_dir=simulated)


@pytest.mark.parametrize("content", [b"", b"data_particles\nloop_\n", b"\x93NUMPY garbage"])
def test_not_a_cs_file(tmp_path, content):
    path = tmp_path / "p.cs"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"p.cs: not a cryoSPARC .cs file"):
        read_cryosparc(path)


def test_missing_file_and_project_dir_on_star(tmp_path, simulated):
    with pytest.raises(InputError, match=r"none.cs: cryoSPARC .cs file not found"):
        ParticleDataset(tmp_path / "none.cs")
    with pytest.raises(InputError, match=r"particles.star: project_dir applies"):
        ParticleDataset(simulated / "particles.star", project_dir=simulated)
