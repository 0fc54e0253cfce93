from __future__ import annotations

import pytest
from helpers import Log


@pytest.fixture
def log() -> Log:
    return Log()
