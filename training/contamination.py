"""How much of a set of reconstruction errors is anomalous, estimated from the errors alone.

A model that has learnt the normal beats reconstructs them with small errors spread
roughly log-normally; anomalies sit in a second, higher mode. A two-component Gaussian
mixture on the log errors, kept only when BIC prefers it to one component and its modes
are well apart, gives the anomalous share and the error at which a beat becomes more
likely anomalous than normal. Used by the ``auto`` threshold and by robust training to
decide which training rows to drop, neither of which may read labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.mixture import GaussianMixture

# One-sided normal quantile for the no-contamination case: flag the top ~0.5 % of the
# normal mode (z = 2.576).
NORMAL_TAIL_Z = 2.576
# Modes closer than this (in pooled standard deviations) are one skewed mode, not two.
MIN_SEPARATION = 2.0


@dataclass(frozen=True)
class Contamination:
    """The estimated anomalous share of the errors and the cut that separates it."""

    share: float
    cut: float
    components: int


def estimate(errors: np.ndarray, seed: int = 0) -> Contamination:
    """Fit one and two log-normal modes; the upper mode, if real, is the contamination.

    With two modes the cut is where the posterior of the upper mode reaches one half;
    with one, the cut is the normal mode's upper tail (mean + 2.576 sd in log space)."""
    log = np.log(np.maximum(np.asarray(errors, dtype=np.float64), 1e-12)).reshape(-1, 1)
    one = GaussianMixture(1, random_state=seed).fit(log)
    mu1, sd1 = float(one.means_[0, 0]), float(np.sqrt(one.covariances_.ravel()[0]))
    fallback = Contamination(
        share=float((log[:, 0] > mu1 + NORMAL_TAIL_Z * sd1).mean()),
        cut=float(np.exp(mu1 + NORMAL_TAIL_Z * sd1)),
        components=1,
    )
    if len(log) < 20:
        return fallback
    two = GaussianMixture(2, random_state=seed, n_init=3).fit(log)
    means = two.means_[:, 0]
    sds = np.sqrt(two.covariances_.ravel())
    low, high = int(np.argmin(means)), int(np.argmax(means))
    separation = (means[high] - means[low]) / np.sqrt((sds[low] ** 2 + sds[high] ** 2) / 2)
    if two.bic(log) >= one.bic(log) or separation < MIN_SEPARATION:
        return fallback
    # The posterior boundary between the two means, on a fine grid (monotone there).
    grid = np.linspace(means[low], means[high], 2001).reshape(-1, 1)
    posterior_high = two.predict_proba(grid)[:, high]
    crossing = int(np.argmax(posterior_high >= 0.5))
    cut = float(np.exp(grid[crossing, 0]))
    # Never above the normal mode's own tail: an upper mode that is wide and low would
    # otherwise put the cut far out.
    cut = min(cut, float(np.exp(means[low] + NORMAL_TAIL_Z * sds[low])))
    return Contamination(share=float((np.asarray(errors) > cut).mean()), cut=cut, components=2)
