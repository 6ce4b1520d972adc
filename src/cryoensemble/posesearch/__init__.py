"""Pose search: scores of every rotation on an SO(3) grid and every shift, coarse to fine, and the
pose-marginalised likelihood. Sits above the likelihood (``inference``). See ``docs/pose_search.md``.
"""

from cryoensemble.posesearch._search import (
    PoseSearchConfig as PoseSearchConfig,
)
from cryoensemble.posesearch._search import (
    PoseSearchResult as PoseSearchResult,
)
from cryoensemble.posesearch._search import (
    angular_errors as angular_errors,
)
from cryoensemble.posesearch._search import (
    error_summary as error_summary,
)
from cryoensemble.posesearch._search import (
    input_poses_as_truth as input_poses_as_truth,
)
from cryoensemble.posesearch._search import (
    marginal_log_likelihood_matrix as marginal_log_likelihood_matrix,
)
from cryoensemble.posesearch._search import (
    plot_angular_distribution as plot_angular_distribution,
)
from cryoensemble.posesearch._search import (
    plot_angular_error as plot_angular_error,
)
from cryoensemble.posesearch._search import (
    pose_search as pose_search,
)
from cryoensemble.posesearch._search import (
    pose_search_arrays as pose_search_arrays,
)
from cryoensemble.posesearch._search import (
    poses_table as poses_table,
)
from cryoensemble.posesearch._search import (
    prepare_reference as prepare_reference,
)
from cryoensemble.posesearch._search import (
    score_rotations as score_rotations,
)
from cryoensemble.posesearch._search import (
    shift_window as shift_window,
)
