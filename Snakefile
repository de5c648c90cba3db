# LOOD workflow: retrained-model MIA ground truth vs NNGP leave-one-out distinguishability.
# Usage: snakemake --cores 2            (default experiment, config.yaml)
#        snakemake --configfile config/paper_cifar10.yaml --profile profiles/slurm
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The rules' scripts import the installed `lood` package (pip install -e ., or with --sdm conda
# envs/*.yaml and their post-deploy scripts); the Snakefile itself also finds it in src/ when run
# from a checkout without installing.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

# A JAX job that sees a GPU (a jax with CUDA) takes memory as it needs it instead of 75 % of the
# card up front, so jobs sharing a GPU do not starve each other; the jobs inherit it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


# A --configfile replaces config.yaml instead of being merged into it (merging would add the
# default experiment to every other config).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/placement.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/mia.smk"
include: "rules/nngp.smk"
include: "rules/attacks.smk"
include: "rules/memorization.smk"
include: "rules/landscape.smk"
include: "rules/influence.smk"
include: "rules/privacy.smk"
include: "rules/panoramia.smk"
include: "rules/comparison.smk"
include: "rules/targets.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
