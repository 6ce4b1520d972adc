"""Peng (1996) five-Gaussian elastic electron scattering factors of neutral atoms.

The electron scattering factor (form factor) of a neutral atom is fitted as

    f(s) = sum_{i=1..5} a_i exp(-b_i s^2),    s = sin(theta) / lambda = q / 2   [1/Angstrom]

with a_i in Angstrom and b_i in Angstrom^2 (Peng, Ren, Dudarev & Whelan, Acta Cryst. A52 (1996)
257-276). Peng et al. give two fits, reproduced in International Tables for Crystallography
Vol. C as Tables 4.3.2.2 and 4.3.2.3:

* ``fit_range=2`` (the default): fitted over 0 < s < 2 1/A, the range that matters for cryo-EM
  (s = 2 1/A is a resolution of 0.25 A). Taken at run time from gemmi (``Element.c4322``).
* ``fit_range=6``: fitted over 0 < s < 6 1/A (the table used by e.g. TEM-simulator and cisTEM;
  carbon a = 0.0489 0.2091 0.7537 1.1420 0.3555). Transcribed below.

Both fits agree to about 1% over 0 < s < 2 1/A for the light elements.
"""

from __future__ import annotations

from collections.abc import Iterable

import gemmi
import numpy as np
from jaxtyping import ArrayLike, Float

from cryoensemble.errors import InputError

__all__ = [
    "MOTT_BETHE_CONSTANT",
    "PENG_ELEMENTS",
    "PENG_FIT_RANGES",
    "electron_scattering_factor",
    "peng_parameters",
]

#: m e^2 / (2 h^2) in Angstrom: f_e(s) = MOTT_BETHE_CONSTANT (Z - f_x(s)) / s^2.
MOTT_BETHE_CONSTANT = 0.023934

#: The two published fit ranges (upper limit of s in 1/Angstrom).
PENG_FIT_RANGES = (2.0, 6.0)

# Peng et al. (1996) fit over 0 < s < 6 1/A (International Tables C, Table 4.3.2.3):
# Z: (a1..a5 [A], b1..b5 [A^2]).
_PENG_S6: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    1: ((0.0088, 0.0449, 0.1481, 0.2356, 0.0914), (0.1152, 1.0867, 4.9755, 16.5591, 43.2743)),
    2: ((0.0084, 0.0443, 0.1314, 0.1671, 0.0666), (0.0596, 0.5360, 2.4274, 7.7852, 20.3126)),
    3: ((0.0478, 0.2048, 0.5253, 1.5225, 0.9853), (0.2258, 2.1032, 12.9349, 50.7501, 136.6280)),
    4: ((0.0423, 0.1874, 0.6019, 1.4311, 0.7891), (0.1445, 1.4180, 8.1165, 27.9705, 74.8684)),
    5: ((0.0436, 0.1898, 0.6788, 1.3273, 0.5544), (0.1207, 1.1595, 6.2474, 21.0460, 59.3619)),
    6: ((0.0489, 0.2091, 0.7537, 1.1420, 0.3555), (0.1140, 1.0825, 5.4281, 17.8811, 51.1341)),
    7: ((0.0267, 0.1328, 0.5301, 1.1020, 0.4215), (0.0541, 0.5165, 2.8207, 10.6297, 34.3764)),
    8: ((0.0365, 0.1729, 0.5805, 0.8814, 0.3121), (0.0652, 0.6184, 2.9449, 9.6298, 28.2194)),
    9: ((0.0382, 0.1822, 0.5972, 0.7707, 0.2130), (0.0613, 0.5753, 2.6858, 8.8214, 25.6668)),
    10: ((0.0380, 0.1785, 0.5494, 0.6942, 0.1918), (0.0554, 0.5087, 2.2639, 7.3316, 21.6912)),
    11: ((0.1260, 0.6442, 0.8893, 1.8197, 1.2988), (0.1684, 1.7150, 8.8386, 50.8265, 147.2073)),
    12: ((0.1130, 0.5575, 0.9046, 2.1580, 1.4735), (0.1356, 1.3579, 6.9255, 32.3165, 92.1138)),
    13: ((0.1165, 0.5504, 1.0179, 2.6295, 1.5711), (0.1295, 1.2619, 6.8242, 28.4577, 88.4750)),
    14: ((0.0567, 0.3365, 0.8104, 2.4960, 2.1186), (0.0582, 0.6155, 3.2522, 16.7929, 57.6767)),
    15: ((0.1005, 0.4615, 1.0663, 2.5854, 1.2725), (0.0977, 0.9084, 4.9654, 18.5471, 54.3648)),
    16: ((0.0915, 0.4312, 1.0847, 2.4671, 1.0852), (0.0838, 0.7788, 4.3462, 15.5846, 44.6365)),
    17: ((0.0799, 0.3891, 1.0037, 2.3332, 1.0507), (0.0694, 0.6443, 3.5351, 12.5058, 35.8633)),
    18: ((0.1044, 0.4551, 1.4232, 2.1533, 0.4459), (0.0853, 0.7701, 4.4684, 14.5864, 41.2474)),
    19: ((0.2149, 0.8703, 2.4999, 2.3591, 3.0318), (0.1660, 1.6906, 8.7447, 46.7825, 165.6923)),
    20: ((0.2355, 0.9916, 2.3959, 3.7252, 2.5647), (0.1742, 1.8329, 8.8407, 47.4583, 134.9613)),
    21: ((0.4636, 2.0802, 2.9003, 1.4193, 2.4323), (0.3682, 4.0312, 22.6493, 71.8200, 103.3691)),
    22: ((0.2123, 0.8960, 2.1765, 3.0436, 2.4439), (0.1399, 1.4568, 6.7534, 33.1168, 101.8238)),
    23: ((0.2369, 1.0774, 2.1894, 3.0825, 1.7190), (0.1505, 1.6392, 7.5691, 36.8741, 107.8517)),
    24: ((0.1970, 0.8228, 2.0200, 2.1717, 1.7516), (0.1197, 1.1985, 5.4097, 25.2361, 94.4290)),
    25: ((0.1943, 0.8190, 1.9296, 2.4968, 2.0625), (0.1135, 1.1313, 5.0341, 24.1798, 80.5598)),
    26: ((0.1929, 0.8239, 1.8689, 2.3694, 1.9060), (0.1087, 1.0806, 4.7637, 22.8500, 76.7309)),
    27: ((0.2186, 0.9861, 1.8540, 2.3258, 1.4685), (0.1182, 1.2300, 5.4177, 25.7602, 80.8542)),
    28: ((0.2313, 1.0657, 1.8229, 2.2609, 1.1883), (0.1210, 1.2691, 5.6870, 27.0917, 83.0285)),
    29: ((0.3501, 1.6558, 1.9582, 0.2134, 1.4109), (0.1867, 1.9917, 11.3396, 53.2619, 63.2520)),
    30: ((0.1780, 0.8096, 1.6744, 1.9499, 1.4495), (0.0876, 0.8650, 3.8612, 18.8726, 64.7016)),
    31: ((0.2135, 0.9768, 1.6669, 2.5662, 1.6790), (0.1020, 1.0219, 4.6275, 22.8742, 80.1535)),
    32: ((0.2135, 0.9761, 1.6555, 2.8938, 1.6356), (0.0989, 0.9845, 4.5527, 21.5563, 70.3903)),
    33: ((0.2059, 0.9518, 1.6372, 3.0490, 1.4756), (0.0926, 0.9182, 4.3291, 19.2996, 58.9329)),
    34: ((0.1574, 0.7614, 1.4834, 3.0016, 1.7978), (0.0686, 0.6808, 3.1163, 14.3458, 44.0455)),
    35: ((0.1899, 0.8983, 1.6358, 3.1845, 1.1518), (0.0810, 0.7957, 3.9054, 15.7701, 45.6124)),
    36: ((0.1742, 0.8447, 1.5944, 3.1507, 1.1338), (0.0723, 0.7123, 3.5192, 13.7724, 39.1148)),
    37: ((0.3781, 1.4904, 3.5753, 3.0031, 3.3272), (0.1557, 1.5347, 9.9947, 51.4251, 185.9828)),
    38: ((0.3723, 1.4598, 3.5124, 4.4612, 3.3031), (0.1480, 1.4643, 9.2320, 49.8807, 148.0937)),
    42: ((0.3069, 1.1714, 3.2293, 3.4254, 2.1224), (0.1101, 1.0222, 5.9613, 25.1965, 93.5831)),
    47: ((0.2739, 1.0503, 3.1564, 2.7543, 1.4328), (0.0881, 0.8028, 4.4451, 18.7011, 79.2633)),
    48: ((0.3072, 1.1303, 3.2046, 2.9329, 1.6560), (0.0966, 0.8856, 4.6273, 20.6789, 73.4723)),
    53: ((0.2617, 1.0325, 2.8097, 4.4809, 2.3190), (0.0749, 0.6914, 3.4634, 16.3603, 48.2522)),
    55: ((0.5713, 2.4866, 4.9795, 4.0198, 4.4403), (0.1626, 1.8213, 11.1049, 49.0568, 202.9987)),
    56: ((0.5229, 2.2874, 4.7243, 5.0807, 5.6389), (0.1434, 1.6019, 9.4511, 42.7685, 148.4969)),
    74: ((0.3661, 1.6191, 3.2455, 4.0856, 3.2064), (0.0761, 0.7543, 4.0952, 18.2886, 68.0967)),
    78: ((0.3083, 1.4158, 2.9662, 3.9349, 2.1709), (0.0609, 0.5993, 3.1921, 12.5285, 49.7675)),
    79: ((0.3055, 1.3945, 2.9617, 3.8990, 2.0026), (0.0596, 0.5827, 3.1035, 11.9693, 47.9106)),
    80: ((0.3593, 1.5736, 3.5237, 3.8109, 1.6953), (0.0694, 0.6758, 3.8457, 15.6203, 56.6614)),
    82: ((0.3540, 1.5453, 3.5975, 4.3152, 2.7743), (0.0668, 0.6465, 3.6968, 16.2056, 61.4909)),
    92: ((0.6410, 2.2643, 4.8713, 5.9287, 5.3935), (0.1097, 1.0644, 5.7907, 25.0261, 101.3899)),
}

#: Atomic numbers supported by :func:`peng_parameters` (both fit ranges).
PENG_ELEMENTS: frozenset[int] = frozenset(_PENG_S6)


def _ranges(values: Iterable[int]) -> str:
    """Compact list of integers: [1, 2, 3, 5] -> '1-3, 5'."""
    out: list[list[int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return ", ".join(f"{lo}-{hi}" if hi > lo else f"{lo}" for lo, hi in out)


def _element_label(z: object) -> str:
    try:
        zi = int(z)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return repr(z)
    name = gemmi.Element(zi).name if 0 < zi < 119 else "?"
    return f"{name} (Z={zi})"


def _check_z(atomic_numbers: Iterable[float] | ArrayLike) -> np.ndarray:
    z = np.asarray(atomic_numbers).reshape(-1)
    if z.size and not np.issubdtype(z.dtype, np.integer):
        bad = [v for v in z.tolist() if not float(v).is_integer()]
        if bad:
            raise InputError(f"atomic numbers must be integers, got {bad[0]!r}")
    z = z.astype(np.int64)
    for zi in np.unique(z):
        if int(zi) not in PENG_ELEMENTS:
            raise InputError(
                f"no Peng (1996) electron scattering factors for element {_element_label(zi)}; "
                f"supported: Z = {_ranges(PENG_ELEMENTS)}"
            )
    return z


def _table_row(z: int, fit_range: float) -> tuple[list[float], list[float]]:
    if fit_range == 6.0:
        a, b = _PENG_S6[z]
        return list(a), list(b)
    coef = gemmi.Element(z).c4322  # International Tables C, Table 4.3.2.2 (0 < s < 2)
    return list(coef.a), list(coef.b)


def peng_parameters(
    atomic_numbers: Iterable[float] | ArrayLike, fit_range: float = 2.0
) -> tuple[Float[np.ndarray, "n 5"], Float[np.ndarray, "n 5"]]:
    """Peng (1996) 5-Gaussian parameters for each atom.

    Arguments:
        atomic_numbers: (n,) atomic numbers Z; every Z must be in :data:`PENG_ELEMENTS`.
        fit_range: 2 (fit over 0 < s < 2 1/A, default) or 6 (fit over 0 < s < 6 1/A).

    Returns:
        ``(a, b)``: float64 arrays of shape (n, 5); a in Angstrom, b in Angstrom^2, such that
        f(s) = sum_i a_i exp(-b_i s^2) with s = sin(theta)/lambda in 1/Angstrom.
    """
    if float(fit_range) not in PENG_FIT_RANGES:
        raise InputError(f"fit_range must be 2 or 6 (1/Angstrom), got {fit_range!r}")
    z = _check_z(atomic_numbers)
    rows = {int(zi): _table_row(int(zi), float(fit_range)) for zi in np.unique(z)}
    a = np.array([rows[int(zi)][0] for zi in z], dtype=np.float64).reshape(-1, 5)
    b = np.array([rows[int(zi)][1] for zi in z], dtype=np.float64).reshape(-1, 5)
    return a, b


def electron_scattering_factor(
    atomic_numbers: Iterable[float] | ArrayLike, s: Float[ArrayLike, "..."], fit_range: float = 2.0
) -> Float[np.ndarray, "n ..."]:
    """The electron form factor f(s) in Angstrom of each atom.

    Arguments:
        atomic_numbers: (n,) atomic numbers Z.
        s: sin(theta) / lambda in 1/Angstrom, any shape.
        fit_range: 2 or 6 (see :func:`peng_parameters`).

    Returns:
        (n, *s.shape) form factors in Angstrom.
    """
    a, b = peng_parameters(atomic_numbers, fit_range)
    s2 = np.asarray(s, dtype=np.float64)[..., None] ** 2
    expand = (slice(None),) + (None,) * (s2.ndim - 1)
    return np.sum(a[expand] * np.exp(-b[expand] * s2[None]), axis=-1)
