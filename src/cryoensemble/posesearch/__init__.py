"""Pose search of particle images against structures or maps, and the pose-marginalised likelihood.

Grid. The rotations come from the Hopf-fibration grid of :func:`cryoensemble.pose.hopf_grid`
(HEALPix directions x uniform psi, equal-volume cells, uniform quadrature weights). The search
starts on the whole grid of ``base_level`` (default 2: 4608 rotations, 15 degrees) and refines
``n_refine`` times (default 2: 7.5 and 3.75 degrees): at each level the ``n_candidates`` cells of
largest shift-marginalised likelihood of every particle are split into their 8 children at the
next level (which partition the parent exactly).

Shifts, all at once by FFT cross-correlation. For one rotation R the model image at the in-plane
translation t (pixels) is x_t = crop(X(. - t)), with X the noiseless projection on the padded grid
G = ``pad_factor`` x box with the particle's CTF applied (as the imaging pipeline forms it: a
Fourier slice of the map, times the CTF, one inverse FFT). With the data image y centred on its
mean (yc, zero-padded to G), c(t) = sum_p yc(p) X(p - t) = irfft2(F[yc] conj(F[X]))(t) gives the
cross term of the likelihood for every integer t with one inverse FFT per (particle, rotation).
The template's slice F[slice](R) is computed once per rotation and shared by all particles; only
the CTF product is per particle. The other terms of the likelihood are the template's sum and
sum of squares inside the box, taken at t = 0 (exact for every t when ``pad_factor`` = 1: the
shift is then circular, exactly as the pipeline's phase ramp; with padding the few fringes that
move across the box edge are neglected). Scores:

* ``marginal`` (default, :func:`cryoensemble.inference.log_likelihood_marginal`, no mask):
  S_xy(t) = c(t), S_xx = sum (x - xbar)^2, R(t) = S_yy - S_xy(t)^2 / S_xx, det = N S_xx;
* ``white`` (:class:`cryoensemble.noise.WhiteGaussianNoise`, known sigma):
  -(sum y^2 - 2 (c(t) + ybar sum x) + sum x^2) / (2 sigma^2) - N/2 log(2 pi sigma^2).

Shift prior: the integer translations inside a disc of radius ``max_shift`` (Angstrom, default 10 %
of the box), uniform (or Gaussian with ``shift_sigma``, normalised over the disc). The best
translation is refined below a pixel by a parabola through the scores of its 4 neighbours.

Pose-marginalised likelihood. log p(y | structure) = log sum_leaves w_cell sum_t p(t)
exp(score(R_cell, t)), the sum over the leaves of the adaptive partition (the coarse cells that
were not refined, with weight 1/N_l of their level, and the finest cells): a midpoint rule on
SO(3) x shifts. :func:`marginal_log_likelihood_matrix` returns it as an (n_particles,
n_structures) matrix that :func:`cryoensemble.inference.fit_weights_em` and
:func:`~cryoensemble.inference.sample_posterior_gibbs` take unchanged.

Frequency marching (``coarse_box``, default 32; ``band_limit``). A rotation step dtheta only
resolves frequencies up to about 1 / (D dtheta) for a particle of diameter D, so the coarse
levels are scored on the images Fourier-cropped to a small box (``coarse_box`` pixels at the base
level, doubled per refinement level; 128 x 128 at 1.2 A: 32 px of 4.8 A at 15 deg, 64 px of
2.4 A at 7.5 deg) with templates sliced on the same coarse frequencies and the CTF evaluated
there, pad factor 1 (the cropped data are band-limited; these levels only rank candidates), and
the likelihood of the cropped images (N = b^2 pixels; white sigma scaled by b / N_box). The last
level uses the full images (or the box of ``band_limit``) and ``pad_factor``. The
pose-marginalised likelihood and the reported best pose are taken at that final sampling only:
the unrefined cells of levels scored at another sampling are left out of the sum (their scores
are likelihoods of other data; for concentrated posteriors their mass is negligible), so
log p(y | structure) is consistent across structures, which is what reweighting needs.

Memory is bounded by chunking: ``rotation_chunk`` rotations x ``particle_batch`` particles
correlation maps (G x G float32) at a time on the global level (``lax.map`` over rotation
chunks), one particle's 8 K children at a time on the refinement levels.

Local pose marginalisation (``_local.py``). When the particles come with poses that are only
approximately right (a consensus refinement), :func:`local_marginal_log_likelihood_matrix`
averages the likelihood over a neighbourhood of each given pose: rotations exp([w]_x) A on a
lattice of rotation vectors within ``extent`` standard deviations (Gaussian weights of
``rotation_sigma`` per axis) and translations on a half-pixel grid around the given shift
(Gaussian weights of ``shift_sigma``), the shifts from the same FFT cross-correlation and phase
ramps as the search (no re-projection per shift). :func:`estimate_pose_prior` finds the two
widths that maximise the total marginal likelihood (a grid search, refined by parabolas).

Layout: ``_config.py`` (:class:`PoseSearchConfig`, the kernel settings), ``_kernels.py`` (the
JAX kernels), ``_search.py`` (the library drivers), ``_local.py`` (the local marginal). The ``cryoensemble poses`` outputs (STAR
file, report, plots) live in :mod:`cryoensemble.workflows.poses`.
"""

from cryoensemble.posesearch._config import PoseSearchConfig as PoseSearchConfig
from cryoensemble.posesearch._kernels import shift_window as shift_window
from cryoensemble.posesearch._local import LocalPoseConfig as LocalPoseConfig
from cryoensemble.posesearch._local import PosePriorEstimate as PosePriorEstimate
from cryoensemble.posesearch._local import estimate_pose_prior as estimate_pose_prior
from cryoensemble.posesearch._local import (
    local_marginal_log_likelihood_matrix as local_marginal_log_likelihood_matrix,
)
from cryoensemble.posesearch._local import (
    local_marginal_with_estimated_prior as local_marginal_with_estimated_prior,
)
from cryoensemble.posesearch._local import rotation_quadrature as rotation_quadrature
from cryoensemble.posesearch._search import PoseSearchResult as PoseSearchResult
from cryoensemble.posesearch._search import angular_errors as angular_errors
from cryoensemble.posesearch._search import (
    marginal_log_likelihood_matrix as marginal_log_likelihood_matrix,
)
from cryoensemble.posesearch._search import pose_search as pose_search
from cryoensemble.posesearch._search import pose_search_arrays as pose_search_arrays
from cryoensemble.posesearch._search import prepare_reference as prepare_reference
from cryoensemble.posesearch._search import score_rotations as score_rotations

__all__ = [
    "LocalPoseConfig",
    "PosePriorEstimate",
    "PoseSearchConfig",
    "PoseSearchResult",
    "angular_errors",
    "estimate_pose_prior",
    "local_marginal_log_likelihood_matrix",
    "local_marginal_with_estimated_prior",
    "marginal_log_likelihood_matrix",
    "pose_search",
    "pose_search_arrays",
    "prepare_reference",
    "rotation_quadrature",
    "score_rotations",
    "shift_window",
]
