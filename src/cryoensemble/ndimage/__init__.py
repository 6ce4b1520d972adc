"""Image and map helpers in the style of ``scipy.ndimage``: frequency grids, Fourier cropping,
low-pass filters, masks, radial averages and background normalisation. Pure JAX, one
implementation of each, used by every stage and workflow.

Conventions: images are (..., n, n) with the centre at pixel n // 2 (RELION's); FFT-layout arrays
have the zero frequency at index 0 (``jnp.fft`` order) unless a name says ``centred``; spatial
frequencies are in 1/Angstrom.
"""

from cryoensemble.ndimage._fourier import (
    fourier_crop as fourier_crop,
)
from cryoensemble.ndimage._fourier import (
    frequency_grid as frequency_grid,
)
from cryoensemble.ndimage._fourier import (
    frequency_radius as frequency_radius,
)
from cryoensemble.ndimage._fourier import (
    lowpass as lowpass,
)
from cryoensemble.ndimage._masks import circular_mask as circular_mask
from cryoensemble.ndimage._normalize import (
    background_statistics as background_statistics,
)
from cryoensemble.ndimage._normalize import (
    normalize_background as normalize_background,
)
from cryoensemble.ndimage._radial import (
    radial_average as radial_average,
)
from cryoensemble.ndimage._radial import (
    radial_index as radial_index,
)
from cryoensemble.ndimage._radial import (
    radial_power_spectrum as radial_power_spectrum,
)
from cryoensemble.ndimage._radial import (
    radial_to_grid as radial_to_grid,
)
