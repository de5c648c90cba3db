# LOOD workflow: retrained-model MIA ground truth vs NNGP leave-one-out distinguishability.
# Usage: snakemake --cores 2            (default experiment, config.yaml)
#        snakemake --configfile config/paper_cifar10.yaml --profile profiles/slurm
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The library lives in src/lood; make it importable by the script jobs even when not installed.
_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)


# A --configfile replaces config.yaml instead of being merged into it (merging would add the
# default experiment to every other config).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/mia.smk"
include: "rules/nngp.smk"
include: "rules/plots.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
