"""``python -m lood.resources [CONFIG] [--profile P] [--catalogue C]``: what every job of a config
would ask for, on the partitions of a SLURM profile (the same numbers rules/placement.smk gives
the rules). The rules come from the workflow's catalogue, loaded from its file."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import yaml

from lood import config as lc
from lood.resources.cluster import parse_cluster

CATALOGUE = "workflow/catalogue.py"  # relative to the checkout (the working directory)


def load_catalogue(path: str | Path = CATALOGUE) -> ModuleType:
    """The workflow's catalogue of rules (``RULES``, ``placed`` ...), imported from its file: it
    belongs to the workflow, which ``lood`` does not import."""
    path = Path(path).resolve()
    name = "lood_workflow_catalogue"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no rule catalogue at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    """What every job would ask for: experiment, rule, partition, CPUs, GPUs, memory, runtime."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("config", nargs="?", default="config.yaml")
    ap.add_argument(
        "--profile",
        default="profiles/slurm/config.yaml",
        help="profile whose `config: cluster:` gives partitions and limits ('' for none)",
    )
    ap.add_argument("--catalogue", default=CATALOGUE, help="the workflow's rule catalogue")
    args = ap.parse_args(argv)
    cfg = lc.with_defaults(lc.resolve_inherit(yaml.safe_load(Path(args.config).read_text())))
    site = {}
    if args.profile:
        site = yaml.safe_load(Path(args.profile).read_text()).get("config", {}).get("cluster")
    placed = load_catalogue(args.catalogue).placed(cfg, parse_cluster(site))
    w = 1 + max(len(rule) for rules in placed.values() for rule in rules)
    print(
        f"{'experiment':<14}{'rule':<{w}}{'partition':<10}{'cpus':>5}{'gpus':>5}"
        f"{'mem_mb':>9}{'runtime':>8}{'gpu_mem_mb':>11}"
    )
    for e, rules in placed.items():
        for rule, (req, part) in rules.items():
            print(
                f"{e:<14}{rule:<{w}}{part.name if part else '-':<10}{req.cpus:>5}{req.gpus:>5}"
                f"{req.mem_mb:>9}{req.runtime:>8}{req.gpu_mem_mb:>11}"
            )
