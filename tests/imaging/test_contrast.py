"""The image model's contrast step: projected potential (V A) -> phase contrast."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from cryoensemble.imaging import phase_contrast
from cryoensemble.scattering import interaction_constant


def test_phase_contrast_uses_the_interaction_constant():
    image = jnp.ones((4, 4), jnp.float32) * 100.0  # V A
    c = phase_contrast(image, 300.0)
    assert c.dtype == jnp.float32
    np.testing.assert_allclose(c, 100.0 * float(interaction_constant(300.0)), rtol=1e-6)
    assert 0.06 < float(c[0, 0]) < 0.07  # sigma_e ~ 6.5e-4 rad / (V A) at 300 kV
