"""A first-order lag: how soil follows the air, a slow sensor its surroundings. Shared by detection and the
simulator as arithmetic only (each brings its own time constants); written out in numpy rather than
imported from scipy.signal, whose import costs a process more than half a second."""

from __future__ import annotations

import numpy as np


def exponential_lag(values: np.ndarray, alpha: float, start: np.ndarray) -> np.ndarray:
    """Each row of `values` followed step by step with `level += alpha * (value - level)`, from the
    level `start` (one per row): the output at each step is the level after it."""
    steps = np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)  # a step's values side by side
    level = np.array(start, dtype=np.float64).reshape(-1)
    out = np.empty_like(steps)
    for step in range(steps.shape[0]):
        level += alpha * (steps[step] - level)
        out[step] = level
    return out.T
