"""Interrupted runs resume with the command that started them (profiles/default, the workflow
profile Snakemake reads on every run: rerun-incomplete), end to end on the tiny config's two
out-model shards (seconds per run): Ctrl-C, and a SIGKILLed controller with its stale lock."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import REPO, SNAKEMAKE, TINY

TARGETS = ["results/tiny/models/out_0.npz", "results/tiny/models/out_1.npz"]
SHARD = "results/tiny/models/out_0.npz"


def command(work: Path, *args: str) -> list[str]:
    """The run as a user types it, from another directory than the Snakefile's."""
    return [*SNAKEMAKE, "--directory", str(work), "--configfile", str(TINY), *args]


def run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(work, *args), cwd=work, capture_output=True, text=True, timeout=600
    )


def start(work: Path) -> subprocess.Popen[bytes]:
    """One job at a time, in its own process group (as a terminal's foreground job)."""
    return subprocess.Popen(
        command(work, "--cores", "1", *TARGETS),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.time() + 300
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"no {what} within 300 s"
        time.sleep(0.002)


def marker(work: Path, output: str) -> Path:
    """Snakemake's mark of an output whose job started and has not been seen to finish."""
    return work / ".snakemake" / "incomplete" / base64.b64encode(output.encode()).decode()


def umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    """The two shards of an uninterrupted run."""
    work = tmp_path_factory.mktemp("uninterrupted")
    proc = run(work, "--cores", "2", *TARGETS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Using workflow specific profile" in proc.stderr
    for target in TARGETS:  # results are readable as the umask allows (0644 under 0022)
        assert (work / target).stat().st_mode & 0o777 == 0o666 & ~umask()
    return {target: (work / target).read_bytes() for target in TARGETS}


def test_ctrl_c_then_the_same_command_resumes(reference, tmp_path):
    """Ctrl-C (SIGINT to the process group) just after a shard wrote its output, before its job
    was seen to end: Snakemake marks that output incomplete; the same command reruns that job and
    the rest, to the same bytes."""
    proc = start(tmp_path)
    wait_for(
        lambda: (tmp_path / SHARD).exists() and marker(tmp_path, SHARD).exists(),
        proc,
        "a written shard still marked incomplete",
    )
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) != 0
    assert marker(tmp_path, SHARD).exists()
    assert not list((tmp_path / ".snakemake" / "locks").glob("*"))  # Ctrl-C releases the lock
    written = (tmp_path / SHARD).stat().st_mtime_ns
    # without the workflow profile the same command stops ...
    bare = run(tmp_path, "--cores", "2", "--workflow-profile", "none", *TARGETS)
    assert bare.returncode != 0 and "IncompleteFilesException" in bare.stderr, bare.stderr[-2000:]
    # ... with it, it reruns the marked shard from scratch and finishes
    rerun = run(tmp_path, "--cores", "2", *TARGETS)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (tmp_path / SHARD).stat().st_mtime_ns != written
    for target, data in reference.items():
        assert (tmp_path / target).read_bytes() == data, target


def test_killed_controller_needs_unlock_then_resumes(reference, tmp_path):
    """SIGKILL of snakemake alone (e.g. an out-of-memory kill): its running job is orphaned and
    still writes its shard, and the lock stays. The run stops naming --unlock; after
    `snakemake --unlock` (safe: no snakemake and no job of this directory runs any more) the
    same command reruns the job that had been running and finishes, to the same bytes."""
    proc = start(tmp_path)
    log = tmp_path / "results/tiny/logs/train_out_0.log"
    wait_for(lambda: log.exists() and log.stat().st_size > 0, proc, "a training job")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.time() + 300
    while True:  # the orphaned job finishes on its own
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline, "the orphaned job did not end"
        time.sleep(0.05)
    assert (tmp_path / SHARD).exists() and marker(tmp_path, SHARD).exists()
    locked = run(tmp_path, "--cores", "2", *TARGETS)
    assert locked.returncode != 0
    assert "LockException" in locked.stderr and "--unlock" in locked.stderr
    assert run(tmp_path, "--unlock").returncode == 0
    written = (tmp_path / SHARD).stat().st_mtime_ns
    rerun = run(tmp_path, "--cores", "2", *TARGETS)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (tmp_path / SHARD).stat().st_mtime_ns != written
    for target, data in reference.items():
        assert (tmp_path / target).read_bytes() == data, target


def test_the_workflow_profile_leaves_slurm_runs_as_their_profile_says():
    """profiles/default overrides --profile profiles/slurm key by key: every key it sets must
    have the SLURM profile's value, and it must not set cores (a cap on every cluster job's
    threads at the login node's core count) or jobs (the number of cluster jobs)."""
    default = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert default["rerun-incomplete"] is True
    assert {k: slurm.get(k) for k in default} == default
    assert not {"cores", "jobs"} & set(default)
