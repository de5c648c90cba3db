"""The GPU install holds together: benchmarks/gpu_stack.py finds wheels writing the same file and
CUDA wheels nothing pins, shown on synthetic reports; with LOOD_NETWORK_TESTS=1 it resolves the
``gpu`` extra against plain PyPI in a fresh venv and reads every wheel's file list, and checks
that the conda envs' pip step works from where Snakemake puts the env files."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = REPO
_spec = importlib.util.spec_from_file_location("gpu_stack", ROOT / "benchmarks" / "gpu_stack.py")
gpu_stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_stack)

network = pytest.mark.skipif(
    os.environ.get("LOOD_NETWORK_TESTS") != "1",
    reason="resolves against PyPI: set LOOD_NETWORK_TESTS=1 (needs network, ~2 min)",
)


def _item(name: str, version: str, requires: list[str] | None = None) -> dict:
    return {
        "metadata": {"name": name, "version": version, "requires_dist": requires or []},
        "download_info": {"url": f"https://example.invalid/{name}-{version}-py3-none-any.whl"},
    }


def test_collisions_name_every_writer_of_a_shared_path():
    files = {
        "nvidia-cudnn-cu12": ["nvidia/cudnn/lib/libcudnn.so.9", "nvidia/cudnn/include/a.h"],
        "nvidia-cudnn-cu13": ["nvidia/cudnn/lib/libcudnn.so.9"],
        "torch": ["torch/__init__.py"],
    }
    assert gpu_stack.collisions(files) == {
        "nvidia/cudnn/lib/libcudnn.so.9": ["nvidia-cudnn-cu12", "nvidia-cudnn-cu13"]
    }
    assert gpu_stack.collisions({"a": ["x"], "b": ["y"]}) == {}


def test_installed_path_maps_data_schemes_and_drops_dist_info():
    assert gpu_stack.installed_path("torch/lib/libc10.so") == "torch/lib/libc10.so"
    assert gpu_stack.installed_path("x-1.0.data/platlib/nvidia/a.so") == "nvidia/a.so"
    assert gpu_stack.installed_path("x-1.0.data/scripts/tool") == "<scripts>/tool"
    assert gpu_stack.installed_path("x-1.0.dist-info/RECORD") is None


def test_unpinned_cuda_wheels_are_found_and_pins_accepted():
    assert gpu_stack.pinned("==9.10.2.21") and gpu_stack.pinned("==13.1.1.3.*")
    assert gpu_stack.pinned(">=0.5.3,<=0.5.3")
    assert not gpu_stack.pinned(">=9.1,<10.0") and not gpu_stack.pinned("==13.*")
    report = {
        "environment": {"platform_system": "Linux", "sys_platform": "linux"},
        "install": [
            _item("torch", "2.13.0", ['nvidia-nccl-cu13==2.29.7; platform_system == "Linux"']),
            _item(
                "jax-cuda12-plugin", "0.5.3", ['nvidia-cudnn-cu12<10,>=9.1; extra == "with_cuda"']
            ),
            _item("nvidia-nccl-cu13", "2.29.7"),
            _item("nvidia-cudnn-cu12", "9.28.0.42"),
        ],
    }
    report["install"][1]["metadata"]["provides_extra"] = ["with_cuda"]
    # jax-cuda12-plugin: nothing pins it in this report
    assert gpu_stack.unpinned_cuda(report) == [
        "jax-cuda12-plugin 0.5.3",
        "nvidia-cudnn-cu12 9.28.0.42",
    ]
    pins = [
        "jax-cuda12-plugin==0.5.3",
        "nvidia-cudnn-cu12==9.10.2.21 ; platform_system == 'Windows'",
    ]
    assert gpu_stack.unpinned_cuda(report, pins) == ["nvidia-cudnn-cu12 9.28.0.42"]  # marker off
    # a pin in an extra that was not asked for pins nothing
    lood = _item("lood", "0.1.0", ['nvidia-cudnn-cu12==9.10.2.21; extra == "gpu"'])
    lood |= {"requested": True, "requested_extras": ["all"]}
    lood["metadata"]["provides_extra"] = ["all", "gpu"]
    report["install"].append(lood)
    assert "nvidia-cudnn-cu12 9.28.0.42" in gpu_stack.unpinned_cuda(report)
    lood["requested_extras"] = ["all", "gpu"]
    assert "nvidia-cudnn-cu12 9.28.0.42" not in gpu_stack.unpinned_cuda(report)


def test_conda_envs_carry_the_pins_of_pyproject_and_no_local_path():
    """Snakemake copies an env file to .snakemake/conda/<hash>.yaml, so a path in its pip list
    would point into .snakemake/; lood is installed by the post-deploy script instead."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {r.split("==")[0]: r for r in extras["optional-dependencies"]["torch"]}
    pins |= {r.split("==")[0]: r for r in extras["optional-dependencies"]["jax"]}
    for name in ("torch", "jax"):
        env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert not [p for p in pip if p.startswith("-") or "/" in p or ".." in p], pip
        for line in pip:
            pkg = line.split("==")[0]
            if pkg in pins:
                assert line == pins[pkg], (name, line)
        deploy = (ROOT / "envs" / f"{name}.post-deploy.sh").read_text()
        assert 'dirname "$0"' in deploy and f'-e "$root[{name}]"' in deploy


def _fresh_venv(tmp_path: Path) -> str:
    """A new venv with PyPI's newest pip, as make install does (the bundled one may be too old
    to parse the CUDA wheels' metadata)."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--upgrade", "pip", "--index-url", gpu_stack.PYPI],
        check=True,
        env=gpu_stack.isolated_pip_env(),
    )
    return python


@pytest.mark.network
@network
def test_gpu_extra_resolves_to_one_cuda_stack(tmp_path):
    python = _fresh_venv(tmp_path)
    report = gpu_stack.resolve(f"{ROOT}[all,dev,gpu]", ROOT / "constraints.txt", python=python)
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    result = gpu_stack.check(report, lines)
    assert result["collisions"] == {}, sorted(result["collisions"])[:20]
    assert result["unpinned_cuda"] == []
    names = result["resolved"]
    assert names["torch"] == "2.13.0" and "nvidia-cudnn-cu13" in names
    assert not [n for n in names if n.endswith("-cu12") or n.startswith("jax-cuda")]


@pytest.mark.network
@network
def test_conda_pip_step_resolves_from_the_snakemake_copy(tmp_path):
    """What conda runs for an env's pip list: a requirements file beside the copied env file
    (.snakemake/conda/), ``pip install -r`` from there; dry run, against PyPI."""
    python = _fresh_venv(tmp_path)
    where = tmp_path / ".snakemake" / "conda"
    where.mkdir(parents=True)
    for name in ("torch", "jax"):
        env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        req = where / f"condaenv.{name}.requirements.txt"
        req.write_text("\n".join(pip) + "\n")
        done = subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "-q",
                "--index-url",
                gpu_stack.PYPI,
                "-r",
                req.name,
            ],
            cwd=where,
            env=gpu_stack.isolated_pip_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
