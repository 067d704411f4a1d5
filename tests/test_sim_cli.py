"""`consortium sim` as users and CI call it: one JSON object, replayable seeds, clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from consortium.cli.sim_cmd import sim


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(sim, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_json_report_has_the_contract_keys() -> None:
    code, out, _ = invoke("--seeds", "3", "--json")
    assert code == 0
    report = json.loads(out)
    for key in (
        "runs",
        "safety_violations",
        "liveness_failures",
        "failing_seeds",
        "faults",
        "byzantine",
    ):
        assert key in report
    assert report["runs"] == 3 and report["failing_seeds"] == []
    assert report["messages_per_block"] > 0 and report["bytes_per_block"] > 0
    assert set(report["latency_virtual_ms"]) == {"p50", "p99", "max"}


def test_seed_replay_gives_the_same_trace_hash() -> None:
    first = json.loads(invoke("--seed", "42", "--json", "--nodes", "4")[1])
    second = json.loads(invoke("--seed", "42", "--json", "--nodes", "4")[1])
    assert first["trace_hash"] == second["trace_hash"]
    assert first["runs"] == 1


def test_bad_options_fail_with_one_line() -> None:
    bad_sizes = [["--plot", "/tmp/never.png", "--plot-nodes", s] for s in ("3,4", "four", ",")]
    for args in (["--nodes", "3"], ["--seeds", "0"], ["--seed", "-1"], *bad_sizes):
        code, out, err = invoke(*args)
        assert code != 0
        assert "Traceback" not in out + err
        assert len(err.strip().splitlines()) == 1, err


def test_plot_writes_a_png(tmp_path: Path) -> None:
    target = tmp_path / "cost.png"
    code, out, _ = invoke(
        "--nodes", "4", "--seeds", "1", "--json", "--plot", str(target), "--plot-nodes", "4,5"
    )
    assert code == 0, out
    assert target.read_bytes().startswith(b"\x89PNG")
    assert [p["nodes"] for p in json.loads(out)["plot_points"]] == [4, 5]


def test_replay_does_not_depend_on_the_process_hash_seed() -> None:
    """Set iteration order changes with PYTHONHASHSEED; a replay must not."""
    code = "from consortium.cli.sim_cmd import sim; sim(['--seed', '7', '--json'])"
    hashes = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        hashes.add(json.loads(done.stdout)["trace_hash"])
    assert len(hashes) == 1
