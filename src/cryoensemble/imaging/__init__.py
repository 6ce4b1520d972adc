"""The image model: atoms or maps -> projection -> CTF, composed, jit-compiled, chunked and
sharded over devices; and the particle batches every consumer reads."""

from cryoensemble.imaging._contrast import phase_contrast as phase_contrast
from cryoensemble.imaging._particles import (
    AbstractParticles as AbstractParticles,
)
from cryoensemble.imaging._particles import (
    ArrayParticles as ArrayParticles,
)
from cryoensemble.imaging._particles import (
    ParticleBatch as ParticleBatch,
)
from cryoensemble.imaging._particles import (
    crop_geometry as crop_geometry,
)
from cryoensemble.imaging._pipeline import (
    ImagingConfig as ImagingConfig,
)
from cryoensemble.imaging._pipeline import (
    image_one as image_one,
)
from cryoensemble.imaging._pipeline import (
    simulate_images as simulate_images,
)
from cryoensemble.imaging._pipeline import (
    simulate_images_jit as simulate_images_jit,
)
