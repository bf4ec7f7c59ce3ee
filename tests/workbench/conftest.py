"""Fixtures shared by the workbench's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (it takes seconds to start); its files go
    under a temporary directory, and its token is given in the environment, so that Ray
    writes none under ~/.ray (nor in the repository)."""
    ray = pytest.importorskip("ray")
    import os
    import secrets
    import tempfile

    tmp = tempfile.mkdtemp(prefix="mercat-ray-")
    token = os.environ.get("RAY_AUTH_TOKEN")
    os.environ["RAY_AUTH_TOKEN"] = token or secrets.token_hex(16)
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=tmp)
    yield ray
    ray.shutdown()
    if token is None:
        del os.environ["RAY_AUTH_TOKEN"]
