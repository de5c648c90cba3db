"""lood.resources and the workflow's rule catalogue: job sizes that follow the work, the site's
limits, and their use by the Snakefile (a too-large job stops the workflow before anything is
submitted; what sbatch would get); the catalogue names exactly the Snakefile's rules."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from helpers import REPO

import lood.config as lc
import lood.resources as lr

PROFILE = REPO / "profiles" / "slurm"
CATALOGUE = lr.load_catalogue(REPO / "workflow" / "catalogue.py")

# Peak RSS (MB) of every job, measured on this 2-core VM (benchmarks/BENCHMARKS.md, "Resources").
MEASURED = {
    "config.yaml": {
        "split": 337,
        "train_in": 572,
        "train_out": 2555,
        "mia": 168,
        "nngp_kernel": 1008,
        "lood": 933,
        "lood_all": 937,
        "train_subsets": 1426,
        "memorization": 138,
        "landscape_queries": 135,
        "lood_landscape": 1026,
        "train_landscape": 1431,  # measured as mia_landscape, which then also re-trained
        "optimize_query": 1191,
        "train_influence": 373,
        "influence_function": 1391,
        "tracin": 621,
        "audit": 479,
        "inversion": 403,
        "plot_correlation": 199,
        "plot_lood_all": 196,
        "plot_query": 210,
        "plot_inversion": 458,
        "plot_landscape": 212,
        "plot_influence": 196,
        "plot_memorization": 218,
        "plot_audit": 211,
    },
    "tests/configs/tiny.yaml": {
        "split": 166,
        "train_in": 352,
        "train_out": 351,
        "mia": 165,
        "nngp_kernel": 992,
        "lood": 922,
        "lood_all": 924,
        "train_subsets": 348,
        "memorization": 137,
        "landscape_queries": 135,
        "lood_landscape": 999,
        "train_landscape": 434,  # measured as mia_landscape (then with the re-training)
        "optimize_query": 1140,
        "train_influence": 350,
        "influence_function": 444,
        "tracin": 417,
        "audit": 463,
        "inversion": 353,
        "plot_correlation": 190,
        "plot_lood_all": 186,
        "plot_query": 192,
        "plot_inversion": 438,
        "plot_landscape": 192,
        "plot_influence": 187,
        "plot_memorization": 200,
        "plot_audit": 201,
    },
}


def load(path: str) -> dict:
    return lc.with_defaults(lc.resolve_inherit(yaml.safe_load((REPO / path).read_text()), REPO))


def requests(path: str, **kw) -> dict[str, lr.Request]:
    cfg = load(path)
    exp = lc.experiment(cfg, next(iter(cfg["experiments"])))
    return CATALOGUE.requests(exp, n_differ=lc.n_differ(cfg, REPO), **kw)


@pytest.mark.parametrize("path", sorted(MEASURED))
def test_requests_cover_the_measured_peaks_without_doubling_them(path):
    reqs = requests(path)
    for rule, peak in MEASURED[path].items():
        mem = reqs[rule].mem_mb
        assert peak <= mem <= max(2.0 * peak, peak + 500), (rule, peak, mem)  # small: +500 MB
        assert reqs[rule].runtime >= lr.MIN_RUNTIME and reqs[rule].cpus >= 1
    assert set(MEASURED[path]) <= set(reqs)


def test_training_request_follows_models_chunk_and_network():
    net = lr.Problem(n_train=500, d=784, n_classes=2, width=128, depth=2)
    fit = lr.Training(epochs=20, batch_size=64, chunk_size=1000)
    base = dict(n_models=1000, n_eval=450)
    ref = lr.ensemble_training(net, fit, **base)
    chunked = replace(fit, chunk_size=100)
    assert lr.ensemble_training(net, chunked, **base).mem_mb < ref.mem_mb / 2
    assert lr.ensemble_training(net, replace(fit, chunk_size=0), **base) == ref  # 0: all at once
    fewer = lr.ensemble_training(net, chunked, n_models=100, n_eval=450)
    assert fewer.runtime < ref.runtime
    wide = replace(net, width=1024, depth=9)
    assert lr.ensemble_training(wide, fit, **base).mem_mb > 20 * ref.mem_mb
    more = lr.ensemble_training(net, replace(fit, epochs=2000), **base)
    assert more.cpus > ref.cpus and more.runtime > ref.runtime
    capped = lr.ensemble_training(net, replace(fit, epochs=2000), **base, max_cpus=2)
    assert capped.cpus == 2 and capped.runtime > more.runtime  # fewer CPUs, longer
    gpu = lr.ensemble_training(net, fit, **base, gpu=True)
    assert gpu.gpus == 1 and lr.GPU_MIN_CPUS <= gpu.cpus <= lr.GPU_MAX_CPUS
    assert gpu.gpu_mem_mb > 0 and gpu.runtime < ref.runtime


def test_gp_requests_grow_with_the_kernel():
    small = lr.gp_lood(n_train=1000, n_classes=2, n_records=1000)
    big = lr.gp_lood(n_train=10000, n_classes=2, n_records=10000)
    kernel_mb = 8 * 10000**2 / 2**20  # one N x N float64 matrix: 763 MB
    assert big.mem_mb - small.mem_mb > 3 * kernel_mb
    assert lr.gp_lood(n_train=40000, n_classes=2, n_records=1).runtime > small.runtime  # N^3
    blocked = lr.nngp_kernel(n_train=10000, d=3072, depth=9, batch_size=500)
    whole = lr.nngp_kernel(n_train=10000, d=3072, depth=9)
    assert blocked.mem_mb < whole.mem_mb and blocked.mem_mb > kernel_mb


def test_cpus_and_minutes():
    assert [lr.cpus_for(s) for s in (1, 59, 60, 599, 600, 3599, 3600, 1e9)] == [
        1,
        1,
        2,
        2,
        4,
        4,
        8,
        8,
    ]
    assert lr.cpus_for(1e9, max_cpus=3) == 3
    assert lr.runtime_for(0, 0) == lr.MIN_RUNTIME
    assert lr.runtime_for(3600, 0) == math.ceil(lr.RUNTIME_SAFETY * 60)
    assert lr.parse_minutes(90) == 90 and lr.parse_minutes("90") == 90
    assert lr.parse_minutes("1:30:00") == 90 and lr.parse_minutes("2-00:00:00") == 2880
    assert lr.parse_minutes("1-12") == 2160 and lr.parse_minutes("UNLIMITED") == math.inf
    with pytest.raises(ValueError, match="not a time limit"):
        lr.parse_minutes("soon")


def shipped_cluster() -> dict[str, lr.Partition]:
    return lr.parse_cluster(
        yaml.safe_load((PROFILE / "config.yaml").read_text())["config"]["cluster"]
    )


@pytest.mark.parametrize("path", ["config.yaml", "config/paper_cifar10.yaml", "config/dp.yaml"])
def test_shipped_experiments_fit_the_shipped_profile(path):
    cluster = shipped_cluster()
    caps = {"max_cpus": cluster["cpu"].max_cpus, "max_gpu_cpus": cluster["gpu"].max_cpus}
    on_gpu, on_cpu = requests(path, gpu=True, **caps), requests(path, gpu=False, **caps)
    gpu_rules = CATALOGUE.GPU_RULES
    placed = {
        r: lr.placement(on_gpu[r] if r in gpu_rules else None, on_cpu[r], cluster) for r in on_cpu
    }
    for rule, (req, part) in placed.items():
        lr.check_request(rule, "x", req, part)
        assert (part.kind == "gpu") == (req.gpus == 1)
    on_gpu_partition = {r for r, (_, part) in placed.items() if part.kind == "gpu"}
    if path == "config/paper_cifar10.yaml":  # float64 CG on 50 gradients of 11.5M weights at once
        assert on_gpu["influence_function"].gpu_mem_mb > cluster["gpu"].gpu_mem_mb
        assert on_gpu_partition == gpu_rules - {"influence_function"}
    else:
        assert on_gpu_partition == gpu_rules


def test_placement():
    cpu, gpu = lr.Request(1000, 10, 4), lr.Request(4000, 5, 2, 1, 30000)
    site = {"cpu": lr.Partition("cpu", "c", 8), "gpu": lr.Partition("gpu", "g", 4)}
    assert lr.placement(gpu, cpu, site) == (gpu, site["gpu"])
    assert lr.placement(None, cpu, site) == (cpu, site["cpu"])  # a CPU-only job
    assert lr.placement(gpu, cpu, {"cpu": site["cpu"]}) == (cpu, site["cpu"])
    assert lr.placement(gpu, cpu, {}) == (cpu, None)
    small = site | {"gpu": lr.Partition("gpu", "g", 4, gpu_mem_mb=16000)}  # does not fit one GPU
    assert lr.placement(gpu, cpu, small) == (cpu, site["cpu"])


def test_paper_asks_for_more_than_the_default():
    default, paper = (
        requests("config.yaml", gpu=True),
        requests("config/paper_cifar10.yaml", gpu=True),
    )
    for rule in ("train_out", "nngp_kernel", "lood_all", "optimize_query"):
        assert paper[rule].mem_mb > default[rule].mem_mb, rule
        assert paper[rule].runtime >= default[rule].runtime, rule


def test_cluster_settings_are_validated():
    parts = lr.parse_cluster(
        {
            "cpu": {
                "partition": "short",
                "max_cpus": "16",
                "max_mem_mb": "64000",
                "max_runtime": "04:00:00",
            }
        }
    )
    assert parts == {"cpu": lr.Partition("cpu", "short", 16, 64000.0, 240.0)}
    assert lr.parse_cluster(None) == {}
    bad = [
        ({"gpu": {"partition": "g"}}, "needs a 'cpu' section"),
        ({"cpu": {"partition": "c"}, "tpu": {}}, r"unknown key\(s\) \['tpu'\]"),
        ({"cpu": {"max_cpus": 4}}, r"cluster.cpu.partition"),
        ({"cpu": {"partition": "c", "max_mem": 4}}, r"cluster.cpu: unknown key\(s\) \['max_mem'\]"),
        ({"cpu": {"partition": "c", "max_cpus": "many"}}, "must be numbers"),
        ({"cpu": {"partition": "c", "max_mem_mb": 0}}, "must be positive"),
        ({"cpu": {"partition": "c", "max_runtime": "later"}}, r"cluster.cpu.max_runtime"),
    ]
    for section, message in bad:
        with pytest.raises(ValueError, match=message):
            lr.parse_cluster(section)


def test_a_request_above_a_limit_names_rule_setting_and_remedy():
    part = lr.Partition(
        "gpu", "a100", max_cpus=8, max_mem_mb=8000, max_runtime=60, gpu_mem_mb=16000
    )
    hint = CATALOGUE.RULES["train_out"].hint
    lr.check_request("train_out", "e", lr.Request(8000, 60, 8, 1, 16000), part, hint)  # at limits
    with pytest.raises(ValueError) as err:
        lr.check_request("train_out", "e", lr.Request(9000, 61, 2, 1, 17000), part, hint)
    msg = str(err.value)
    for part_of_msg in (
        "rule train_out (experiment 'e')",
        "9000 MB",
        "cluster.gpu.max_mem_mb",
        "cluster.gpu.max_runtime",
        "cluster.gpu.gpu_mem_mb",
        "'a100'",
        "train.chunk_size",
    ):
        assert part_of_msg in msg, (part_of_msg, msg)


def test_npz_features_are_read_from_the_header(tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.zeros((7, 3, 4, 5), np.float32), y=np.zeros(7))
    assert lr.npz_shape(str(tmp_path / "d.npz")) == (7, 3, 4, 5)
    assert lr.data_sizes({"dataset": "npz", "path": str(tmp_path / "d.npz")}) == (7, 60)
    assert lr.npz_shape(str(tmp_path / "missing.npz")) is None
    assert lr.data_sizes({"dataset": "cifar10"}) == (60000, 3072)


# --- through the Snakefile (dry runs: no cluster needed)


def dry_run(
    tmp_path: Path, *args: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    config = config or REPO / "tests/configs/tiny.yaml"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(config),
        "-n",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_profile_gives_each_job_its_partition_gpu_and_cpus(tmp_path):
    """The resources the SLURM executor turns into sbatch options: partition, cpus_per_task
    (which the plugin prefers over anything else, GPU jobs included), gpu, mem_mb, runtime."""
    proc = dry_run(tmp_path, "--profile", str(PROFILE))
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [
        (m[1], r[1])
        for block in proc.stdout.split("\n\n")
        if (m := re.search(r"^rule (\w+):", block, re.M))
        and (r := re.search(r"resources: (.*)", block))
        and m[1] != "all"
    ]
    reqs = requests("tests/configs/tiny.yaml", gpu=True, max_cpus=32, max_gpu_cpus=8)
    assert len(jobs) > 20
    for rule, text in jobs:
        res = dict(kv.split("=", 1) for kv in text.split(", "))
        gpu = rule in CATALOGUE.GPU_RULES
        assert res["slurm_partition"] == ("gpu" if gpu else "cpu"), rule
        assert res.get("gpu", "0") == ("1" if gpu else "0"), rule
        assert int(res["cpus_per_task"]) == reqs[rule].cpus, rule
        assert int(res["mem_mb"]) == reqs[rule].mem_mb and int(res["runtime"]) == reqs[rule].runtime


def test_a_job_above_the_site_limits_stops_the_workflow_before_any_job(tmp_path):
    site = "cluster={cpu: {partition: cpu, max_mem_mb: 1000, max_runtime: 60}}"
    proc = dry_run(tmp_path, "--profile", str(PROFILE), "--config", site)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"rule \w+ \(experiment 'tiny'\) needs \d+ MB of memory", out), out[-2000:]
    assert "cluster.cpu.max_mem_mb = 1000" in out
    assert not (tmp_path / "results").exists()
    # only the stages that run are checked: 1300 MB is too little for the query optimisation
    # (1700 MB), enough once it is switched off
    site = "cluster={cpu: {partition: cpu, max_mem_mb: 1300}}"
    proc = dry_run(tmp_path, "--profile", str(PROFILE), "--config", site)
    assert proc.returncode != 0 and "rule optimize_query" in proc.stdout + proc.stderr
    cfg = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    cfg["query"]["enabled"] = False
    (tmp_path / "noquery.yaml").write_text(yaml.safe_dump(cfg))
    proc = dry_run(
        tmp_path, "--profile", str(PROFILE), "--config", site, config=tmp_path / "noquery.yaml"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_bad_cluster_settings_stop_the_workflow(tmp_path):
    proc = dry_run(tmp_path, "--config", "cluster={cpu: {max_cpus: 4}}")
    assert proc.returncode != 0
    assert "cluster.cpu.partition" in proc.stdout + proc.stderr


# --- the rule catalogue (workflow/catalogue.py)


@pytest.mark.parametrize("config", ["config.yaml", "tests/configs/tiny.yaml"])
def test_catalogue_names_exactly_the_rules_of_the_snakefile(tmp_path, config):
    """Every rule gets its threads and resources from the catalogue (a rule missing there fails
    at parse time), and the catalogue has no entry for a rule that no longer exists."""
    proc = dry_run(tmp_path, "--list", config=REPO / config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = {m[1] for line in proc.stdout.splitlines() if (m := re.match(r"(\w+)( \(|$)", line))}
    assert listed - {"all"} == set(CATALOGUE.RULES)
    reqs = requests(config)
    assert set(reqs) == set(CATALOGUE.RULES)
    assert CATALOGUE.GPU_RULES == {r for r, rule in CATALOGUE.RULES.items() if rule.gpu}
    assert {"train_in", "train_out", "audit", "inversion"} <= CATALOGUE.GPU_RULES


def test_kernel_rules_are_sized_at_the_kernels_depth():
    """nngp.depth sizes the rules that compute kernels as model.depth would, and leaves the
    training rules at the networks' depth."""
    cfg = load("config/paper_cifar10.yaml")
    exp = lc.experiment(cfg, next(iter(cfg["experiments"])))
    n = lc.n_differ(cfg, REPO)
    full = CATALOGUE.requests(exp, n_differ=n)
    kernel = CATALOGUE.requests(exp | {"nngp": exp["nngp"] | {"depth": 40}}, n_differ=n)
    model = CATALOGUE.requests(exp | {"model": exp["model"] | {"depth": 40}}, n_differ=n)
    for rule in ("nngp_kernel", "ntk_kernel", "lood_landscape", "optimize_query"):
        assert kernel[rule] == model[rule], rule
    assert kernel["lood_landscape"] != full["lood_landscape"]
    assert kernel["train_out"] == full["train_out"] != model["train_out"]


def test_catalogue_switches_follow_the_stages():
    cfg = lc.load_config(yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text()), REPO)
    assert CATALOGUE.runs("lood", cfg, "tiny") and CATALOGUE.runs("optimize_query", cfg, "tiny")
    cfg["query"]["enabled"] = False
    cfg["landscape"]["mia"] = False
    assert not CATALOGUE.runs("optimize_query", cfg, "tiny")
    assert CATALOGUE.runs("lood_landscape", cfg, "tiny")
    assert not CATALOGUE.runs("mia_landscape", cfg, "tiny")
    assert not CATALOGUE.runs("train_landscape", cfg, "tiny")


def test_cli_prints_every_rule_of_every_experiment():
    env = os.environ | {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    cmd = [sys.executable, "-m", "lood.resources", "tests/configs/tiny.yaml"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert {row[1] for row in rows} == set(CATALOGUE.RULES) and {row[0] for row in rows} == {"tiny"}
    reqs = requests("tests/configs/tiny.yaml", gpu=True, max_cpus=32, max_gpu_cpus=8)
    train_out = next(row for row in rows if row[1] == "train_out")
    assert train_out[2:] == [
        "gpu",
        str(reqs["train_out"].cpus),
        "1",
        str(reqs["train_out"].mem_mb),
        str(reqs["train_out"].runtime),
        str(reqs["train_out"].gpu_mem_mb),
    ]


def test_jax_rules_are_cpu_rules():
    """JAX is on the CPU in every install (the GPU install's CUDA stack is torch's alone: README,
    Installing), so no rule run in envs/jax.yaml may ask for a GPU: it would hold one idle."""
    env_of = {}
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            found = re.search(r'conda:\s*\n\s*"\.\./envs/(\w+)\.yaml"', block)
            env_of[block.split(":", 1)[0]] = found.group(1) if found else None
    jax_rules = {r for r, env in env_of.items() if env == "jax"}
    assert {"nngp_kernel", "ntk_kernel", "lood", "lood_landscape", "optimize_query"} <= jax_rules
    assert jax_rules & CATALOGUE.GPU_RULES == set()
    assert CATALOGUE.GPU_RULES <= {r for r, env in env_of.items() if env == "torch"}
