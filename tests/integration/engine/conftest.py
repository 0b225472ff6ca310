"""Real three-process jobs on loopback (helpers in jobs.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _psi_kernels_compiled():
    """Compile the PSI kernels once in the test process so that party processes load
    them from numba's cache instead of each compiling them."""
    from engine.job.demo import warm_up_psi

    warm_up_psi()
