"""Issue 2's bad inputs: each raises a clear InputError naming the problem."""

import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.imaging import ImagingConfig
from cryoensemble.io._mrc import read_map, write_map
from cryoensemble.optics import CTFParams
from cryoensemble.structure import read_structure


def test_missing_structure_file(tmp_path):
    with pytest.raises(InputError, match="nope.pdb"):
        read_structure(tmp_path / "nope.pdb")


def test_empty_structure_file(tmp_path):
    path = tmp_path / "empty.pdb"
    path.write_text("")
    with pytest.raises(InputError, match="empty.pdb"):
        read_structure(path)


def test_truncated_mrc(tmp_path):
    path = tmp_path / "map.mrc"
    write_map(path, np.ones((8, 8, 8), np.float32), 1.5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="map.mrc"):
        read_map(path)


@pytest.mark.parametrize("pixel", [-1.2, 0.0, float("nan")])
def test_impossible_pixel_size(pixel):
    with pytest.raises(InputError, match="pixel size"):
        ImagingConfig(box_size=64, pixel_size=pixel)


def test_nan_defocus():
    with pytest.raises(InputError, match="defocus_u.*finite"):
        CTFParams(defocus_u=float("nan"))
    with pytest.raises(InputError, match="index 2"):
        CTFParams(defocus_u=jnp.array([1e4, 2e4, jnp.inf]))


@pytest.mark.parametrize(
    "kwargs,field",
    [({"voltage": 0.0}, "voltage"), ({"amplitude_contrast": 1.5}, "amplitude contrast")],
)
def test_impossible_optics(kwargs, field):
    with pytest.raises(InputError, match=field):
        CTFParams(defocus_u=1e4, **kwargs)
