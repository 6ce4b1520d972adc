"""Readers refuse broken inputs with one InputError line naming the file and the line, column or
field: duplicated and missing columns, short and long rows, maps and stacks swapped, NaN/inf."""

from __future__ import annotations

import struct

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryoensemble.errors import ConfigError, InputError
from cryoensemble.io import (
    MrcStackWriter,
    ParticleDataset,
    read_header,
    read_map,
    read_mapping,
    read_particles,
    read_stack,
    write_map,
    write_particles,
)

OPTICS = (
    "data_optics\nloop_\n_rlnOpticsGroup\n_rlnVoltage\n_rlnSphericalAberration\n"
    "_rlnAmplitudeContrast\n_rlnImagePixelSize\n_rlnImageSize\n1 300 2.7 0.1 1.5 8\n\n"
)  # lines 1-10


def _star(tmp_path, labels, rows, name="p.star"):
    """Particles loop: data_particles on line 11, labels from line 13, rows after them."""
    text = OPTICS + "data_particles\nloop_\n" + "".join(f"_{c}\n" for c in labels)
    path = tmp_path / name
    path.write_text(text + "".join(r + "\n" for r in rows))
    return path


def _stack(path, n=3, box=8):
    with MrcStackWriter(path, box_size=box, pixel_size=1.5) as w:
        w.append(np.random.default_rng(0).normal(size=(n, box, box)))
    return path


# ----------------------------------------------------------------------------------- STAR
def test_duplicated_particle_column(tmp_path):
    labels = ["rlnImageName", "rlnDefocusU", "rlnOpticsGroup", "rlnDefocusU"]
    p = _star(tmp_path, labels, ["000001@s.mrcs 12000 1 13000"])
    with pytest.raises(InputError, match=r"p.star:16: data_particles repeats .*rlnDefocusU.*14"):
        read_particles(p)


def test_duplicated_optics_column(tmp_path):
    p = _star(tmp_path, ["rlnImageName", "rlnDefocusU"], ["000001@s.mrcs 12000"])
    p.write_text(p.read_text().replace("_rlnImageSize\n1 300", "_rlnImageSize\n_rlnVoltage\n1 300"))
    p.write_text(p.read_text().replace("1.5 8\n", "1.5 8 300\n"))
    with pytest.raises(InputError, match=r"p.star:9: data_optics repeats .*rlnVoltage.*line 4"):
        read_particles(p)


def test_duplicated_column_in_frames_to_write(tmp_path):
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [1.5], "rlnImageSize": [8]})
    particles = pd.DataFrame(
        [["000001@s.mrcs", 1.0, 2.0]], columns=["rlnImageName"] + ["rlnDefocusU"] * 2
    )
    with pytest.raises(InputError, match="out.star: data_particles has column rlnDefocusU more"):
        write_particles(tmp_path / "out.star", (optics, particles))


@pytest.mark.parametrize(
    "bad_row, line, kind",
    [("000002@s.mrcs 12000", 17, "too few values: 2 for 3"), ("000002@s.mrcs 1 1 7", 17, "too many values: 4 for 3")],
)  # fmt: skip
def test_short_and_long_rows_name_their_line(tmp_path, bad_row, line, kind):
    rows = ["000001@s.mrcs 12000 1", bad_row, "000003@s.mrcs 12000 1"]
    p = _star(tmp_path, ["rlnImageName", "rlnDefocusU", "rlnOpticsGroup"], rows)
    assert p.read_text().splitlines()[line - 1] == bad_row
    with pytest.raises(InputError, match=rf"p.star:{line}: row of data_particles has {kind}"):
        read_particles(p)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_in_any_numeric_column(tmp_path, value):
    labels = ["rlnImageName", "rlnDefocusU", "rlnAutopickFigureOfMerit"]
    p = _star(tmp_path, labels, ["000001@s.mrcs 12000 0.5", f"000002@s.mrcs 12000 {value}"])
    with pytest.raises(
        InputError, match=r"p.star: column rlnAutopickFigureOfMerit, row 2 .*line 17"
    ):
        read_particles(p)


def test_not_utf8(tmp_path):
    p = _star(tmp_path, ["rlnImageName", "rlnDefocusU"], ["000001@s.mrcs 12000"])
    p.write_bytes(p.read_bytes().replace(b"12000", b"12\xff00"))
    with pytest.raises(InputError, match=r"p.star: not a text file \(byte \d+ is not UTF-8\)"):
        read_particles(p)


def test_quoted_values_and_comments_keep_the_layout(tmp_path):
    labels = ["rlnImageName", "rlnDefocusU", "rlnMicrographName"]
    rows = ["000001@s.mrcs 12000 'a b.mrc'  # a comment", "# a comment line", ""]
    table = read_particles(_star(tmp_path, labels, rows))
    assert table.particles["rlnMicrographName"].tolist() == ["a b.mrc"]


def test_star_naming_a_map_is_refused(tmp_path):
    write_map(tmp_path / "vol.mrc", np.ones((8, 8, 8)), 1.5)
    p = _star(tmp_path, ["rlnImageName", "rlnDefocusU"], ["000001@vol.mrc 12000"])
    with pytest.raises(InputError, match=r"vol.mrc: is a 3-D map .*not a stack"):
        ParticleDataset(p)


# ----------------------------------------------------------------------------------- MRC
def test_map_read_as_stack_and_stack_read_as_map(tmp_path):
    vol = write_map(tmp_path / "vol.mrc", np.ones((8, 8, 8)), 1.5)
    stack = _stack(tmp_path / "s.mrc")
    with pytest.raises(InputError, match=r"vol.mrc: is a 3-D map \(header ispg = 1, 8 sections\)"):
        read_stack(vol)
    with pytest.raises(InputError, match=r"s.mrc: is a stack of 3 images .*not a 3-D map"):
        read_map(stack)
    assert read_header(vol).nz == 8 and read_header(stack).nz == 3  # either, without expect
    renamed = tmp_path / "vol.mrcs"  # RELION: a .mrcs file is a stack whatever its header
    renamed.write_bytes(vol.read_bytes())
    assert read_stack(renamed).shape == (8, 8, 8)


def test_single_image_is_both(tmp_path):
    one = _stack(tmp_path / "one.mrc", n=1)
    assert read_map(one)[0].shape == (1, 8, 8) and read_stack(one).shape == (1, 8, 8)


@pytest.mark.parametrize("offset, field", [(40, "cella.x"), (56, "cellb.beta"), (200, "origin.y")])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_header_field(tmp_path, offset, field, value):
    p = write_map(tmp_path / "m.mrc", np.ones((4, 4, 4)), 1.0)
    data = p.read_bytes()
    p.write_bytes(data[:offset] + struct.pack("<f", value) + data[offset + 4 :])
    with pytest.raises(InputError, match=rf"m.mrc: invalid MRC header field {field} = (nan|inf)"):
        read_header(p)


def test_negative_extended_header(tmp_path):
    p = write_map(tmp_path / "m.mrc", np.ones((4, 4, 4)), 1.0)
    with mrcfile.open(p, "r+", permissive=True) as m:
        m.header.nsymbt = -16
    with pytest.raises(InputError, match="m.mrc: not a valid MRC file: negative count"):
        read_header(p)


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_non_finite_data(tmp_path):
    vol = np.zeros((4, 4, 4), np.float32)
    vol[2, 1, 3] = np.nan
    p = write_map(tmp_path / "m.mrc", vol, 1.0)
    with pytest.raises(InputError, match=r"m.mrc: voxel \[2, 1, 3\] \(0-based\) is nan"):
        read_map(p)
    s = _stack(tmp_path / "s.mrcs", n=4)
    data = bytearray(s.read_bytes())
    data[1024 + 4 * (2 * 64 + 5) : 1024 + 4 * (2 * 64 + 6)] = struct.pack("<f", np.inf)
    s.write_bytes(bytes(data))
    assert read_stack(s, [0, 1, 3]).shape == (3, 8, 8)  # the bad image not read
    with pytest.raises(InputError, match=r"s.mrcs: image, row, column \[2, 0, 5\] .* is inf"):
        read_stack(s, [3, 2])


# ----------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "suffix, text, key",
    [(".yaml", "snr: .nan\n", "snr"), (".toml", "[projector]\nstep = inf\n", "projector.step"),
     (".yaml", "weights: [0.5, -.inf]\n", "weights.1")],
)  # fmt: skip
def test_config_non_finite(tmp_path, suffix, text, key):
    p = tmp_path / f"c{suffix}"
    p.write_text(text)
    with pytest.raises(ConfigError, match=rf"c{suffix}: option {key}: -?(nan|inf) is not a finite"):
        read_mapping(p)


def test_config_parse_error_is_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match="c.yaml: cannot parse") as err:
        read_mapping(p)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text, match",
    [("? \nsnr: 1\n", "option name None is not text"), ("1: 2\n", "option name 1 is not text"),
     ("projector:\n  2.5: 1\n", "option name 2.5 in projector is not text")],
)  # fmt: skip
def test_config_option_names_are_text(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=rf"c.yaml: {match}"):
        read_mapping(p)
