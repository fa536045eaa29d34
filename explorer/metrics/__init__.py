"""Metrics on codes: LPS (`lps`, `LPSEstimator`), aggregate-posterior structure and reconstruction
(`structure`), supervised disentanglement scores (`supervised`).

Light to import: LightGBM, scikit-learn and scipy are imported inside the functions that use them.
"""

from explorer.metrics.lps import LPSEstimator, LPSResult, lps
from explorer.metrics.structure import (
    NMSEAccumulator,
    correlation,
    covariance,
    covariance_ratio,
    ks_to_prior,
    mmd_to_prior,
    nmse,
    nmse_db,
    to_db,
)
from explorer.metrics.supervised import dci, factor_vae_score, mig, sap
from explorer.versions import library_versions  # what reports record; defined once for checkpoints too

__all__ = [
    "LPSEstimator",
    "LPSResult",
    "NMSEAccumulator",
    "correlation",
    "covariance",
    "covariance_ratio",
    "dci",
    "factor_vae_score",
    "ks_to_prior",
    "library_versions",
    "lps",
    "mig",
    "mmd_to_prior",
    "nmse",
    "nmse_db",
    "sap",
    "to_db",
]
