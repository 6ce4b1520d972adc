"""The image-formation pipeline: Gaussian atoms -> projection at a pose -> CTF.

One jit-compiled function serves simulation and inference. It is vectorised over particles (each
particle has its own rotation, origin and CTF) and chunked with ``lax.map`` so that memory is bounded
by ``chunk_size`` images whatever the batch size, and differentiable end to end.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from cryoensemble.errors import InputError, check_positive
from cryoensemble.optics._apply import apply_ctf, padded_size
from cryoensemble.optics._ctf import CTFParams
from cryoensemble.parallel import shard_over_particles
from cryoensemble.projection._atoms import default_half_width, project_atoms
from cryoensemble.projection._maps import MapProjector, project_map
from cryoensemble.scattering._potential import GaussianAtoms


class ImagingConfig(eqx.Module):
    """Static settings of the image formation (hashable; changing them recompiles).

    box_size: image side n (pixels). pixel_size: Angstrom. pad_factor: zero-padding before the CTF.
    apply_ctf: if False images are the pixel-averaged projected potential (V A).
    half_width: atom window half-width in pixels (see ``default_half_width``).
    chunk_size: images computed at once inside ``lax.map`` (bounds memory). On CPUs one image at a
    time is fastest (cache-resident); on GPUs larger chunks fill the device.
    """

    box_size: int = eqx.field(static=True)
    pixel_size: float = eqx.field(static=True)
    pad_factor: float = eqx.field(static=True, default=2.0)
    apply_ctf: bool = eqx.field(static=True, default=True)
    half_width: int = eqx.field(static=True, default=3)
    chunk_size: int = eqx.field(static=True, default=None)

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
        """A config whose truncation window suits ``atoms`` (see ``default_half_width``)."""
        check_positive("pixel size (Angstrom)", pixel_size)
        kwargs.setdefault("half_width", default_half_width(atoms, pixel_size))
        return cls(box_size=int(box_size), pixel_size=float(pixel_size), **kwargs)


def image_one(
    atoms: GaussianAtoms | MapProjector,
    rotation: Float[Array, "3 3"],
    origin: Float[Array, "2"],
    ctf: CTFParams,
    config: ImagingConfig,
) -> Float[Array, "n n"]:
    """The noiseless image of one particle (projected potential in V A, CTF-filtered).

    ``atoms`` are Gaussian atoms (pixel-integrated projection) or a prepared map
    (Fourier-slice projection; its voxel size must equal ``config.pixel_size``).
    """
    if isinstance(atoms, MapProjector):
        # The CTF goes straight onto the (finely sampled) central slice: one inverse FFT.
        use_ctf = ctf if config.apply_ctf else None
        grid = padded_size(config.box_size, config.pad_factor)
        return project_map(atoms, rotation, origin, config.box_size, use_ctf, grid)
    else:
        image = project_atoms(
            atoms, rotation, origin, config.box_size, config.pixel_size, config.half_width
        )
    if config.apply_ctf:
        image = apply_ctf(image, ctf, config.pixel_size, config.pad_factor)
    return image


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
    atoms: GaussianAtoms | MapProjector,
    rotations: Float[Array, "b 3 3"],
    origins: Float[Array, "b 2"],
    ctf: CTFParams,
    config: ImagingConfig,
    mesh=None,
) -> Float[Array, "b n n"]:
    """Noiseless images of a batch of particles, one pose and one CTF each.

    ``ctf`` is a batched :class:`CTFParams` (every field of shape (b,) or scalar). Memory is bounded
    by ``config.chunk_size`` images per device; with a ``mesh`` (see
    :func:`cryoensemble.parallel.particle_mesh`) the particles are split over its devices.
    Jit-compile the caller (or use :func:`simulate_images_jit`).
    """
    b = rotations.shape[0]
    ctf = jax.tree.map(lambda x: jnp.broadcast_to(x, (b,)), ctf)

    def local(args, structure):
        def batch(chunk):
            r, o, c = chunk
            return jax.vmap(lambda r1, o1, c1: image_one(structure, r1, o1, c1, config))(r, o, c)

        return _chunked(batch, args, jax.tree.leaves(args)[0].shape[0], config.chunk_size)

    if mesh is None:
        return local((rotations, origins, ctf), atoms)
    return shard_over_particles(local, (rotations, origins, ctf), mesh, replicated=atoms)


simulate_images_jit = eqx.filter_jit(simulate_images)
