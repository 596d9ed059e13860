"""Shared fixtures: the repository's language-neutral test data, an engine, synthetic secrets.

The package under test is the installed wheel (built from source by scripts/test.sh), never the
source tree: `sluice` must import from site-packages for these tests to mean anything.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import string

import pytest

import sluice

ROOT = pathlib.Path(__file__).resolve().parents[3]
TESTDATA = ROOT / "testdata"


def pytest_report_header(config):  # noqa: ARG001 - pytest hook signature
    return f"sluice {sluice.__version__} from {pathlib.Path(sluice.__file__).parent}"


@pytest.fixture(scope="session")
def engine() -> sluice.Engine:
    return sluice.Engine()


#: The detector vectors, shared with the Rust and Node tests.
VECTORS: list[dict] = json.loads((TESTDATA / "vectors.json").read_text())["cases"]


def synthetic_stripe_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "sk_live_" + "".join(secrets.choice(alphabet) for _ in range(24))
