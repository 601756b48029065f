"""boothkey runs on Debian 12's own Python and libraries (python3-cryptography 38,
python3-yaml, python3-jinja2, ...), as an observer without a virtual environment runs
it (README: rebuilding without root). A newer-library-only name slips in easily."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
DEBIAN_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no Debian python3 here")
def test_the_observer_paths_import_with_debians_libraries() -> None:
    code = (
        "import builder.cli, builder.build.image, builder.build.steps.sbsign, "
        "builder.observe.rebuild, builder.observe.verify, builder.observe.attest"
    )
    # -I: no user site-packages, no PYTHONPATH; only Debian's dist-packages.
    done = subprocess.run(
        [str(DEBIAN_PYTHON), "-I", "-c", f"import sys; sys.path.insert(0, '.'); {code}"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
