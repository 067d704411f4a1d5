"""CI's runs of the property tests are repeatable: `.ci/run` sets `CI=true`, and Hypothesis then
loads its "ci" profile (derandomized, no example database). Locally it explores afresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _derandomized(env: dict[str, str]) -> bool:
    code = "from hypothesis import settings; print(settings.default.derandomize)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip() == "True"


def test_ci_runs_hypothesis_derandomized() -> None:
    assert "export CI=true" in (ROOT / ".ci" / "run").read_text().splitlines()
    assert _derandomized({"CI": "true", "PATH": "/usr/bin:/bin"})
    assert not _derandomized({"PATH": "/usr/bin:/bin"})
