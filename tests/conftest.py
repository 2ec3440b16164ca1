import numpy as np
import pytest

import normlab.data.locate as locate


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def isolated_data_dirs(tmp_path, monkeypatch):
    """No real dataset location leaks into a test: $NORMLAB_DATA unset, the user
    cache and the system folder moved under ``tmp_path``."""
    monkeypatch.delenv("NORMLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(locate, "SYSTEM_DIRS", (tmp_path / "system",))
