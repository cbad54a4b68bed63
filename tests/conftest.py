import os
import sys
from pathlib import Path

import pytest

# Tests compare results bit for bit: pin torch to one thread like linsig's default.
os.environ.setdefault("OMP_NUM_THREADS", "1")

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # helper modules (http_server, browser)
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED
