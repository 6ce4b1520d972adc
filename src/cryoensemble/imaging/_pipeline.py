"""The image-formation pipeline: potential -> projection at a pose -> CTF.

One jit-compiled function serves simulation and inference. It is vectorised over particles (each
particle has its own rotation, shift and CTF) and chunked with ``lax.map`` so that memory is
bounded by ``chunk_size`` images whatever the batch size, and differentiable end to end. The
projection dispatches on the type of the potential (:class:`~cryoensemble.scattering.GaussianAtoms`:
pixel-integrated atoms then the CTF in real space; :class:`~cryoensemble.projection.MapProjector`:
a Fourier slice with the CTF applied on it).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.errors import InputError, check_positive
from cryoensemble.optics import CTFParams, apply_ctf, padded_size
from cryoensemble.parallel import shard_over_particles
from cryoensemble.projection import MapProjector, default_half_width, project_atoms, project_map
from cryoensemble.scattering import AbstractPotential, GaussianAtoms


class ImagingConfig(eqx.Module):
    """Static settings of the image formation (hashable; changing them recompiles).

    Arguments:
        box_size: image side n (pixels).
        pixel_size: Angstrom.
        pad_factor: zero-padding before the CTF.
        apply_ctf: if False images are the pixel-averaged projected potential (V A).
        half_width: atom window half-width in pixels (see
            :func:`~cryoensemble.projection.default_half_width`).
        chunk_size: images computed at once inside ``lax.map`` (bounds memory). On CPUs one
            image at a time is fastest (cache-resident); on GPUs larger chunks fill the device.
    """

    box_size: int = eqx.field(static=True)
    pixel_size: float = eqx.field(static=True)
    pad_factor: float = eqx.field(static=True, default=2.0)
    apply_ctf: bool = eqx.field(static=True, default=True)
    half_width: int = eqx.field(static=True, default=3)
    chunk_size: int | None = eqx.field(static=True, default=None)

    def __post_init__(self):
        if self.chunk_size is None:
            self.chunk_size = 1 if jax.default_backend() == "cpu" else 64

    def __check_init__(self):
        if int(self.box_size) < 2:
            raise InputError(f"box size must be >= 2 pixels, got {self.box_size}")
        check_positive("pixel size (Angstrom)", self.pixel_size)
        if not self.pad_factor >= 1:
            raise InputError(f"pad factor must be >= 1, got {self.pad_factor}")
        if int(self.chunk_size) < 1:
            raise InputError(f"chunk size must be >= 1, got {self.chunk_size}")

    @classmethod
    def for_atoms(
        cls, atoms: GaussianAtoms, box_size: int, pixel_size: float, **kwargs
    ) -> ImagingConfig:
        """A config whose truncation window suits ``atoms``.

        Arguments:
            atoms: the Gaussian atoms to be imaged.
            box_size: image side in pixels.
            pixel_size: Angstrom.
            **kwargs: the other fields; ``half_width`` defaults to
                :func:`~cryoensemble.projection.default_half_width` of ``atoms``.
        """
        check_positive("pixel size (Angstrom)", pixel_size)
        kwargs.setdefault("half_width", default_half_width(atoms, pixel_size))
        return cls(box_size=int(box_size), pixel_size=float(pixel_size), **kwargs)


@functools.singledispatch
def _project(potential: AbstractPotential, rotation, shift, ctf, config) -> Array:
    """The (CTF-filtered) projection of one particle; one implementation per potential type."""
    raise TypeError(f"no projection for potentials of type {type(potential).__name__}")


@_project.register(GaussianAtoms)
def _(atoms: GaussianAtoms, rotation, shift, ctf, config) -> Array:
    n, v = config.box_size, config.pixel_size
    image = project_atoms(atoms, rotation, shift, n, v, config.half_width)
    return apply_ctf(image, ctf, v, config.pad_factor) if config.apply_ctf else image


@_project.register(MapProjector)
def _(projector: MapProjector, rotation, shift, ctf, config) -> Array:
    # The CTF goes straight onto the (finely sampled) central slice: one inverse FFT.
    use_ctf = ctf if config.apply_ctf else None
    grid = padded_size(config.box_size, config.pad_factor)
    return project_map(projector, rotation, shift, config.box_size, use_ctf, grid)


def image_one(
    potential: AbstractPotential,
    rotation: Float[ArrayLike, "3 3"],
    shift: Float[ArrayLike, "2"],
    ctf: CTFParams,
    config: ImagingConfig,
) -> Float[Array, "n n"]:
    """The noiseless image of one particle (projected potential in V A, CTF-filtered).

    Arguments:
        potential: :class:`~cryoensemble.scattering.GaussianAtoms` (pixel-integrated
            projection) or a :class:`~cryoensemble.projection.MapProjector` (Fourier-slice
            projection; its voxel size must equal ``config.pixel_size``).
        rotation: (3, 3) RELION's matrix A.
        shift: (2,) RELION's (rlnOriginXAngst, rlnOriginYAngst) in Angstrom.
        ctf: the CTF parameters of this particle (scalar fields).
        config: the static imaging settings.
    """
    return _project(potential, rotation, shift, ctf, config)


def _chunked(fn, args, n_items: int, chunk_size: int):
    """Map ``fn`` (vectorised over a leading axis) over ``args`` in chunks of ``chunk_size``."""
    size = min(chunk_size, n_items)
    n_chunks = -(-n_items // size)
    pad = n_chunks * size - n_items

    def pad_reshape(x):
        x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
        return x.reshape((n_chunks, size) + x.shape[1:])

    chunks = jax.tree.map(pad_reshape, args)
    out = jax.lax.map(fn, chunks)
    return jax.tree.map(lambda y: y.reshape((n_chunks * size,) + y.shape[2:])[:n_items], out)


def simulate_images(
    potential: AbstractPotential,
    rotations: Float[ArrayLike, "b 3 3"],
    shifts: Float[ArrayLike, "b 2"],
    ctf: CTFParams,
    config: ImagingConfig,
    mesh: Mesh | None = None,
) -> Float[Array, "b n n"]:
    """Noiseless images (V A) of a batch of particles, one pose and one CTF each.

    Memory is bounded by ``config.chunk_size`` images per device. Jit-compile the caller (or
    use :func:`simulate_images_jit`).

    Arguments:
        potential: Gaussian atoms or a prepared map (see :func:`image_one`).
        rotations: (b, 3, 3) RELION matrices.
        shifts: (b, 2) RELION origins in Angstrom.
        ctf: a batched :class:`~cryoensemble.optics.CTFParams` (every field (b,) or scalar).
        config: the static imaging settings.
        mesh: a device mesh (:func:`cryoensemble.parallel.particle_mesh`) to split the
            particles over; None: the default device.
    """
    rotations, shifts = jnp.asarray(rotations), jnp.asarray(shifts)
    b = rotations.shape[0]
    ctf = jax.tree.map(lambda x: jnp.broadcast_to(x, (b,)), ctf)

    def local(args, structure):
        def batch(chunk):
            r, o, c = chunk
            return jax.vmap(lambda r1, o1, c1: image_one(structure, r1, o1, c1, config))(r, o, c)

        return _chunked(batch, args, jax.tree.leaves(args)[0].shape[0], config.chunk_size)

    if mesh is None:
        return local((rotations, shifts, ctf), potential)
    return shard_over_particles(local, (rotations, shifts, ctf), mesh, replicated=potential)


simulate_images_jit = eqx.filter_jit(simulate_images)
