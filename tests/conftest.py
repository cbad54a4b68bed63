import os
import sys
from pathlib import Path

import pytest

# Tests compare results bit for bit: pin torch to one thread like linsig's default.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# `linsig run` without --jobs uses every core; the tests run it in this process (their monkeypatches
# reach it, and a worker pool per invocation would cost CI minutes), except where they say --jobs.
os.environ.setdefault("LINSIG_JOBS", "1")

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # helper modules (http_server, browser)
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED
