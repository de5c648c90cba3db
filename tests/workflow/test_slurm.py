"""The tiny experiment on a real SLURM cluster through profiles/slurm, against a local run.

A single-node cluster (tests/slurm/start_cluster.sh: partitions cpu and gpu, two fake GPUs, no
accounting database) runs tests/configs/tiny.yaml with the profile as shipped plus what a user
sets for a site (the partitions' limits, here this machine's CPUs and memory). Checked: every job
went through sbatch; the PyTorch rules went to partition gpu with a GPU and the CPUs, memory and
time limit lood.resources asks for, the others to partition cpu; the outputs equal a local run of
the same config byte for byte; a changed plot setting submits only the plot jobs; a training job
cancelled with scancel while it runs is submitted again and the results do not change.

Needs root (the daemons, apt-get). Skipped with the reason where that is missing, except when
CI=true: then it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helpers import PLOT_RULES, REPO, SNAKEMAKE, TINY

PROFILE = REPO / "profiles" / "slurm"
START, STOP = (
    REPO / "tests" / "slurm" / "start_cluster.sh",
    REPO / "tests" / "slurm" / "stop_cluster.sh",
)
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")

pytestmark = pytest.mark.slurm


def _unavailable() -> str | None:
    """Why this machine cannot host the test cluster, or None."""
    if os.geteuid() != 0:
        return "needs root to run slurmctld, slurmd and munged (and apt-get to install them)"
    daemons = ("slurmctld", "slurmd", "sbatch", "munged")
    if not all(shutil.which(d) or Path(f"/usr/sbin/{d}").exists() for d in daemons):
        if not shutil.which("apt-get"):
            return "SLURM and munge are not installed and there is no apt-get to install them"
    return None


def _give_up(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, but the SLURM test cannot run: {reason}")
    pytest.skip(reason)


def _env() -> dict[str, str]:
    """This checkout's lood for the jobs too (sbatch --export=ALL passes the environment on)."""
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    return os.environ | {"PYTHONPATH": path, "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


@pytest.fixture(scope="module")
def cluster():
    reason = _unavailable()
    if reason:
        _give_up(reason)
    t0 = time.perf_counter()
    # finished jobs stay visible to scontrol for an hour, so the tests can inspect every one
    env = os.environ | {"LOOD_SLURM_MIN_JOB_AGE": "3600"}
    proc = subprocess.run(
        ["bash", str(START)], env=env, capture_output=True, text=True, timeout=1200
    )
    if proc.returncode == 6:  # a real cluster's slurm.conf: not ours to replace
        _give_up(proc.stderr.strip())
    assert proc.returncode == 0, f"start_cluster.sh failed:\n{proc.stdout}\n{proc.stderr}"
    setup_s = time.perf_counter() - t0
    cpus, mem = _run(["sinfo", "-h", "-N", "-o", "%c %m"]).stdout.split()[:2]
    yield SimpleNamespace(setup_s=setup_s, cpus=int(cpus), mem_mb=int(mem))
    subprocess.run(["bash", str(STOP)], capture_output=True, timeout=120)


def site_settings(cluster) -> list[str]:
    """What a user of this cluster sets beside the shipped profile: the partitions' limits (the
    node's CPUs and memory, one hour). Account: none (empty, no accounting database here).
    Status command: the profile's squeue. Faster first status check for a short test."""
    limits = f"max_cpus: {cluster.cpus}, max_mem_mb: {cluster.mem_mb}, max_runtime: 60"
    return [
        "--config",
        f"cluster={{cpu: {{partition: cpu, {limits}}}, gpu: {{partition: gpu, {limits}}}}}",
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks",
        "2",
    ]


def write_config(path: Path, mutate=None) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    if mutate:
        mutate(cfg)
    path.write_text(yaml.safe_dump(cfg))
    return path


def slurm_cmd(work: Path, config: Path, cluster, *targets: str) -> list[str]:
    return [
        *SNAKEMAKE,
        "--profile",
        str(PROFILE),
        "--directory",
        str(work),
        "--configfile",
        str(config),
        *site_settings(cluster),
        *targets,
    ]


def run_logged(cmd: list[str], log: Path, nice: int = 0) -> subprocess.Popen:
    """Start cmd (at niceness ``nice``) in its own process group, stdout and stderr to log."""
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]  # not preexec_fn: no fork of a threaded pytest
    with open(log, "w") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
        )


def wait(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # snakemake cancels its SLURM jobs on SIGTERM
        proc.wait(timeout=60)
        raise AssertionError(f"timed out after {timeout} s:\n{log.read_text()[-4000:]}") from None
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


def job_stats(text: str) -> dict[str, int]:
    """The first 'Job stats' table of a snakemake log: rule -> jobs."""
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def submissions(text: str) -> list[tuple[int, int, Path]]:
    """(snakemake job id, SLURM job id, SLURM log) of every sbatch."""
    return [(int(a), int(b), Path(c)) for a, b, c in SUBMITTED.findall(text)]


def scontrol_job(job_id: int) -> dict[str, str]:
    out = _run(["scontrol", "show", "job", "-o", str(job_id)]).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def outputs(base: Path) -> dict[str, bytes]:
    """Every result file but logs and benchmarks (they hold times and host names)."""
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and not {"logs", "benchmarks"} & set(p.relative_to(base).parts)
    }


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The tiny experiment through SLURM and, at the same time, locally on one core at a lower
    priority (it fills the gaps between the SLURM jobs)."""
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    config = write_config(remote / "tiny.yaml")
    t0 = time.perf_counter()
    lproc = run_logged(
        [*SNAKEMAKE, "--directory", str(local), "--configfile", str(config), "--cores", "1"],
        local / "run.log",
        nice=10,
    )
    sproc = run_logged(slurm_cmd(remote, config, cluster), remote / "run.log")
    text = wait(sproc, remote / "run.log", 1800)
    slurm_s = time.perf_counter() - t0
    wait(lproc, local / "run.log", 1800)
    print(
        f"\nSLURM: setup {cluster.setup_s:.1f} s, tiny run {slurm_s:.0f} s, "
        f"{len(submissions(text))} jobs"
    )
    return SimpleNamespace(local=local, remote=remote, config=config, text=text, slurm_s=slurm_s)


def test_every_job_went_through_sbatch(runs):
    stats = job_stats(runs.text)
    subs = submissions(runs.text)
    assert stats["total"] - stats["all"] == len(subs) > 20  # `all` only collects the targets
    assert len({s[0] for s in subs}) == len({s[1] for s in subs}) == len(subs)  # no retries
    for _, job_id, log in subs:
        assert scontrol_job(job_id)["JobState"] == "COMPLETED", job_id
        assert log.name == f"{job_id}.log" and "Finished jobid: 0" in log.read_text(), log


def test_jobs_get_their_partition_gpu_cpus_memory_and_time(runs, cluster):
    import lood.config as lc
    import lood.resources as lr

    catalogue = lr.load_catalogue(REPO / "workflow" / "catalogue.py")
    gpu_rules = catalogue.GPU_RULES
    cfg = lc.with_defaults(yaml.safe_load(runs.config.read_text()))
    want = catalogue.requests(
        lc.experiment(cfg, "tiny"),
        n_differ=lc.n_differ(cfg),
        gpu=True,
        max_cpus=cluster.cpus,
        max_gpu_cpus=cluster.cpus,
    )
    seen = set()
    for _, job_id, _ in submissions(runs.text):
        job = scontrol_job(job_id)
        rule = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", job["Comment"])[1]
        seen.add(rule)
        req = want[rule]
        gpu = rule in gpu_rules
        assert job["Partition"] == ("gpu" if gpu else "cpu"), (rule, job)
        assert ("gres:gpu:1" in job.get("TresPerJob", "")) == gpu, (rule, job)
        assert int(job["NumCPUs"]) == req.cpus, (rule, job["NumCPUs"], req)
        assert job["MinMemoryNode"] == f"{req.mem_mb}M", (rule, job["MinMemoryNode"], req)
        assert lr.parse_minutes(job["TimeLimit"]) == req.runtime, (rule, job["TimeLimit"], req)
    assert gpu_rules <= seen
    # a GPU job gets more than the one CPU a default cpus_per_task would have given it
    assert min(want[r].cpus for r in gpu_rules) == min(lr.GPU_MIN_CPUS, cluster.cpus) > 1 or (
        cluster.cpus == 1
    )


def test_outputs_equal_a_local_run_byte_for_byte(runs):
    local, remote = outputs(runs.local / "results"), outputs(runs.remote / "results")
    assert sorted(local) == sorted(remote)
    assert any(name.endswith(".safetensors") for name in local)
    different = [name for name in local if local[name] != remote[name]]
    assert not different


def test_plot_setting_submits_only_plot_jobs(runs, cluster):
    config = write_config(runs.remote / "dpi.yaml", lambda c: c["plots"].update(dpi=77))
    log = runs.remote / "dpi.log"
    text = wait(run_logged(slurm_cmd(runs.remote, config, cluster), log), log, 900)
    stats = job_stats(text)
    assert set(stats) - {"all", "total"} == PLOT_RULES
    assert len(submissions(text)) == stats["total"] - 1 == len(PLOT_RULES)


def test_cancelled_training_job_is_submitted_again(runs, cluster, tmp_path):
    """scancel a running out-model job: the squeue status sees CANCELLED, snakemake submits the
    job again (retries: 1) and the out models equal the local run's."""
    config = write_config(tmp_path / "tiny.yaml")
    log = tmp_path / "run.log"
    shards = [f"results/tiny/models/out_{i}.npz" for i in range(2)]
    proc = run_logged(slurm_cmd(tmp_path, config, cluster, *shards), log)
    cancelled = None
    deadline = time.time() + 600
    while cancelled is None:
        assert proc.poll() is None, "finished before a training job could be cancelled"
        assert time.time() < deadline, "no out-model job started running"
        for line in _run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"]).stdout.split():
            job_id, comment = line.split("|", 1)
            if comment.startswith("rule_train_out_"):
                assert _run(["scancel", job_id]).returncode == 0
                cancelled = int(job_id)
                break
        time.sleep(0.1)
    text = wait(proc, log, 900)
    assert scontrol_job(cancelled)["JobState"] == "CANCELLED"
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in text
    retried = [s for s in submissions(text) if s[1] == cancelled][0][0]
    assert [s[0] for s in submissions(text)].count(retried) == 2  # submitted once more
    for name in shards:
        assert (tmp_path / name).read_bytes() == (runs.local / name).read_bytes(), name
