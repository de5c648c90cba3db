# Job sizes: `threads: sized("rule").threads` and `resources: **sized("rule").resources`, from
# the rule catalogue (workflow/catalogue.py) and the SLURM profile's cluster settings.
import functools
from pathlib import Path
from types import SimpleNamespace

import lood.resources as lr

CATALOGUE = lr.load_catalogue(Path(workflow.basedir) / "workflow" / "catalogue.py")

try:
    CLUSTER = lr.parse_cluster(CLUSTER_SECTION)  # {} without the SLURM profile
except ValueError as exc:
    raise WorkflowError(f"Invalid cluster settings (SLURM profile): {exc}") from None

# experiment -> rule -> (request, partition)
PLACED = CATALOGUE.placed(config, CLUSTER)


def _placed(rule, wildcards):
    """(request, partition) of the rule's job for the wildcards' experiment; for the rules about
    all experiments together (no experiment wildcard, never GPU rules) the largest request."""
    e = wildcards.get("experiment") if wildcards is not None else None
    if e:
        return PLACED[e][rule]
    largest = lr.largest(PLACED[x][rule][0] for x in EXPERIMENTS)
    return largest, PLACED[EXPERIMENTS[0]][rule][1]


def _not_on_slurm_without_cluster():
    """A --config on the command line replaces the profile's `config:` (and with it `cluster:`):
    stop instead of submitting every job without partitions and GPUs."""
    plugin = workflow.executor_plugin
    if not CLUSTER and plugin is not None and plugin.name == "slurm":
        raise WorkflowError(
            "The SLURM executor runs without the profile's cluster settings: a --config on the "
            "command line replaces the profile's config: entries. Repeat them (--config "
            "cluster=...), or put `cluster:` into a --configfile."
        )


@functools.cache
def sized(name):
    """threads and resources of rule `name` from the catalogue (memory, runtime and CPUs follow
    the experiment's sizes); with the SLURM profile's cluster settings also its partition, its
    CPUs as cpus_per_task (what sbatch gets, GPU jobs included) and, for the GPU rules on the
    gpu partition, one GPU. Checks every request against its partition's limits now, before any
    job is submitted."""
    try:
        CATALOGUE.check(name, config, PLACED)
    except ValueError as exc:
        raise WorkflowError(str(exc)) from None

    def mem_mb(wildcards):
        _not_on_slurm_without_cluster()
        return _placed(name, wildcards)[0].mem_mb

    resources = {"mem_mb": mem_mb, "runtime": lambda w: _placed(name, w)[0].runtime}
    if CLUSTER:
        resources["slurm_partition"] = lambda w: _placed(name, w)[1].name
        resources["cpus_per_task"] = lambda w: _placed(name, w)[0].cpus
    if CATALOGUE.RULES[name].gpu:  # the PyTorch rules: gpu=0 when they run on CPUs, as before
        resources["gpu"] = lambda w: _placed(name, w)[0].gpus
    return SimpleNamespace(threads=lambda w: _placed(name, w)[0].cpus, resources=resources)
