# Config loading and the helpers shared by all rules.
import functools
from types import SimpleNamespace

import lood.config as lc
import lood.resources as lr

# Site settings of the SLURM profile (its `config: cluster:`), not an experiment setting: taken
# out before the experiment config is loaded.
_cluster_section = config.pop("cluster", None)
try:  # user files (data.path, differ.csv, inherit) are relative to the working directory
    _resolved = lc.load_config(config)
except ValueError as exc:
    raise WorkflowError(f"Invalid config: {exc}") from None
config.clear()
config.update(_resolved)

RESULTS = config["results"]
EXPERIMENTS = list(config["experiments"])
N_SHARDS = lc.n_shards(config)

wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    shard=r"\d+",
    gp="nngp|ntk",


def exp(wildcards):
    """Resolved config of the experiment named by the wildcards."""
    return lc.experiment(config, wildcards.experiment)


def _neutral(path, value, only, ignore):
    """``value`` of section ``path`` with the keys that do not change an output set to the
    schema's defaults (train.dp too when DP is off), so editing them reruns nothing."""
    if not isinstance(value, dict):
        return value
    defaults = lc.section_defaults(path)
    out = {k: (defaults[k] if (only and k not in only) or k in ignore else v)
           for k, v in value.items()}  # fmt: skip
    if path == "train" and not out["dp"]["enabled"]:
        out["dp"] = lc.section_defaults("train.dp")
    return out


def section(path, only=(), ignore=()):
    """Params function (the one way rules build params): the config value at ``path`` (e.g.
    ``"train"``, ``"nngp.sigma2"``) of the wildcards' experiment, or of the config for rules
    about all experiments; also callable with an experiment name. ``only`` / ``ignore`` name the
    keys of a section that change the rule's output / that do not."""

    def params(wildcards):
        name = wildcards if isinstance(wildcards, str) else getattr(wildcards, "experiment", None)
        value = lc.experiment(config, name) if name else config
        for key in path.split("."):
            value = value[key]
        return _neutral(path, value, set(only), set(ignore))

    return params


def kernel_files(experiment, gp):
    """Kernel files of a GP: the NNGP kernel, and for the NTK-GP (gp = ntk) also the NTK."""
    base = f"{RESULTS}/{experiment}/nngp"
    files = {"kernel": f"{base}/kernel.npz"}
    if gp == "ntk":
        files["ntk"] = f"{base}/ntk.npz"
    return files


def gp_kernels(wildcards):
    return kernel_files(wildcards.experiment, wildcards.gp)


def gp_inputs(kernel=None):
    """Input function of a GP job: the kernel files of ``kernel`` (nngp | ntk; None: the
    experiment's nngp.kernel) and, with nngp.sigma2 auto, the sigma2 chosen for that GP."""

    def inputs(wildcards):
        nngp = exp(wildcards)["nngp"]
        gp = kernel or nngp["kernel"]
        files = kernel_files(wildcards.experiment, gp)
        if nngp["sigma2"] == "auto":
            files["sigma2"] = f"{RESULTS}/{wildcards.experiment}/nngp/sigma2_{gp}.json"
        return files

    return inputs


def user_files(wildcards):
    """The user's own data and differing-record list, as inputs so that editing them reruns."""
    files = {}
    if config["data"].get("path"):
        files["data"] = config["data"]["path"]
    if config["differ"].get("csv"):
        files["differ_csv"] = config["differ"]["csv"]
    return files


def out_shards(wildcards):
    return expand(
        "{results}/{experiment}/models/out_{shard}.npz",
        results=RESULTS,
        experiment=wildcards.experiment,
        shard=range(N_SHARDS),
    )


def figure_paths(stem):
    return [f"{stem}.{fmt}" for fmt in config["plots"]["formats"]]


def all_outputs():
    outs = []
    for e in EXPERIMENTS:
        base = f"{RESULTS}/{e}"
        outs += [f"{base}/mia.csv", f"{base}/lood.csv", f"{base}/correlation.csv"]
        outs += figure_paths(f"{base}/figures/correlation")
        if lc.experiment(config, e)["nngp"]["all_records"]:
            outs += [f"{base}/lood_all.csv"] + figure_paths(f"{base}/figures/lood_all_hist")
        for targets in EXTRA_TARGETS:
            outs += targets(e)
    return outs + comparison_targets()


# --- helpers of rules/attacks.smk and rules/plots.smk

def attacks_targets(e):
    if not config["attacks"]["enabled"]:
        return []
    base = f"{RESULTS}/{e}"
    outs = [f"{base}/attacks/{name}" for name in
            ("per_record.csv", "pooled.csv", "roc.npz", "free_in.csv", "free_in_summary.csv")]  # fmt: skip
    for stem in ["attacks_roc", "attacks_lood"]:
        outs += figure_paths(f"{base}/figures/{stem}")
    return outs


def correlation_inputs(wildcards):
    """mia.csv and lood.csv; with the attacks stage on also its per-record AUCs (correlation.csv
    gains a row per attack)."""
    files = {"mia": rules.mia.output[0], "lood": rules.lood.output[0]}
    if config["attacks"]["enabled"]:
        files["attacks"] = rules.attacks.output.per_record
    return {k: v.format(experiment=wildcards.experiment) for k, v in files.items()}


# --- helpers of rules/memorization.smk

def mem_lood_table(wildcards):
    """NNGP LOOD of every record when the all-records mode is on, else of the differing records."""
    if exp(wildcards)["nngp"]["all_records"]:
        return rules.lood_all.output[0]
    return rules.lood.output[0]


def memorization_targets(e):
    if not config["memorization"]["enabled"]:
        return []
    base = f"{RESULTS}/{e}"
    outs = [f"{base}/memorization.csv", f"{base}/influence_topk.csv"]
    outs.append(f"{base}/memorization_correlation.csv")
    for stem in ["hist", "examples", "lood", "mia"]:
        outs += figure_paths(f"{base}/figures/memorization_{stem}")
    return outs


# --- helpers of rules/landscape.smk

def landscape_plot_inputs(wildcards):
    files = {"lood": rules.lood_landscape.output[0].format(experiment=wildcards.experiment)}
    if config["landscape"]["mia"]:
        files["mia"] = rules.mia_landscape.output.table.format(experiment=wildcards.experiment)
    return files


def landscape_query_targets(e):
    base = f"{RESULTS}/{e}"
    outs = []
    if config["landscape"]["enabled"]:
        outs += [f"{base}/landscape/lood.csv"] + figure_paths(f"{base}/figures/landscape")
        if config["landscape"]["mia"]:
            outs += [f"{base}/landscape/mia.csv"]
    if config["query"]["enabled"]:
        outs += [f"{base}/query/reconstruction.csv"]
        for stem in ["query_reconstruction", "query_history"]:
            outs += figure_paths(f"{base}/figures/{stem}")
    return outs


# --- helpers of rules/influence.smk

# train settings that change the influence model (n_in, n_out, shards ... do not)
INFLUENCE_TRAIN_KEYS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
                        "loss", "lr_schedule", "lr_milestones", "lr_gamma", "shuffle", "seed", "device",
                        "dp")  # fmt: skip


COMPARISON = f"{RESULTS}/{config['comparison']}"  # outputs about all experiments together


def same_record_inputs():
    """mia, lood, differ and split of every experiment: what a record-by-record comparison across
    experiments reads (plot_activation, plot_dp)."""
    files = {}
    for key, path in [("mia", "mia.csv"), ("lood", "lood.csv"), ("differ", "differ.csv"),
                      ("split", "data/split.npz")]:  # fmt: skip
        for e, p in per_experiment(f"{{results}}/{{experiment}}/{path}").items():
            files[f"{key}_{e}"] = p
    return files


def per_experiment(path):
    return {e: path.format(results=RESULTS, experiment=e) for e in EXPERIMENTS}


def influence_targets(e):
    outs = []
    if config["influence"]["enabled"]:
        base = f"{RESULTS}/{e}"
        outs += [f"{base}/influence_scores.csv", f"{base}/influence_correlation.csv"]
        outs += figure_paths(f"{base}/figures/influence")
    return outs


# --- helpers of rules/comparison.smk (outputs about all experiments together)

def uses_dp(e):
    return bool(lc.experiment(config, e)["train"]["dp"]["enabled"])


def inversion_plot_inputs(wildcards):
    files = {"split": rules.split.output.split.format(experiment=EXPERIMENTS[0])}
    for e in EXPERIMENTS:
        files[f"inv_{e}"] = rules.inversion.output.arrays.format(experiment=e)
        files[f"metrics_{e}"] = rules.inversion.output.metrics.format(experiment=e)
        files[f"in_{e}"] = rules.train_in.output.models.format(experiment=e)
    if config["query"]["enabled"]:  # NNGP query optimisation of the first experiment, to compare
        files["query"] = rules.optimize_query.output.queries.format(experiment=EXPERIMENTS[0])
    return files


def comparison_targets():
    outs = []
    if len(EXPERIMENTS) >= 2:
        outs += [f"{COMPARISON}/activation.csv", f"{COMPARISON}/activation_correlation.csv"]
        outs += figure_paths(f"{COMPARISON}/figures/activation")
    if any(uses_dp(x) for x in EXPERIMENTS):
        outs += [f"{COMPARISON}/dp.csv", f"{COMPARISON}/dp_summary.csv"]
        outs += figure_paths(f"{COMPARISON}/figures/dp")
    if config["audit"]["enabled"]:
        outs += [f"{COMPARISON}/audit.csv"] + figure_paths(f"{COMPARISON}/figures/audit")
    if config["inversion"]["enabled"]:
        outs += [f"{COMPARISON}/inversion.csv"] + figure_paths(f"{COMPARISON}/figures/inversion")
    if config["panoramia"]["enabled"]:
        outs += [f"{COMPARISON}/panoramia.csv"] + figure_paths(f"{COMPARISON}/figures/panoramia")
    return outs


def panoramia_comparison_inputs(wildcards):
    """Per experiment: PANORAMIA's table, the in models (accountant epsilon), the retrained-model
    MIA, LOOD and, when on, the one-run audit."""
    files = {}
    paths = {"panoramia": "panoramia/panoramia.csv", "in": "models/in.npz", "mia": "mia.csv",
             "lood": "lood.csv"}  # fmt: skip
    if config["audit"]["enabled"]:
        paths["audit"] = "audit/audit.csv"
    for key, path in paths.items():
        for e, p in per_experiment(f"{{results}}/{{experiment}}/{path}").items():
            files[f"{key}_{e}"] = p
    return files


# --- helpers of rules/panoramia.smk

def panoramia_targets(e):
    if not config["panoramia"]["enabled"]:
        return []
    base = f"{RESULTS}/{e}/panoramia"
    outs = [f"{base}/{name}" for name in ("split.npz", "generator.safetensors", "generator.csv",
                                          "panoramia.csv", "thresholds.csv", "curves.csv")]  # fmt: skip
    for stem in ["samples", "curves"]:
        outs += figure_paths(f"{base}/figures/{stem}")
    return outs


def onion_targets(e):
    if not config["onion"]["enabled"]:
        return []
    return [f"{RESULTS}/{e}/onion.csv"] + figure_paths(f"{RESULTS}/{e}/figures/onion")


# Optional stages: functions experiment-name -> list of targets for `rule all`.
EXTRA_TARGETS = [memorization_targets, landscape_query_targets, influence_targets, attacks_targets,
                 onion_targets, panoramia_targets]  # fmt: skip


# --- job sizes: `threads: sized("rule").threads` and `resources: **sized("rule").resources`

try:
    CLUSTER = lr.parse_cluster(_cluster_section)  # {} without the SLURM profile
except ValueError as exc:
    raise WorkflowError(f"Invalid cluster settings (SLURM profile): {exc}") from None


def _requests(e, gpu):
    """Request of every rule of experiment e (lood.resources), CPUs capped by the partitions."""
    return lr.experiment_requests(
        lc.experiment(config, e),
        n_differ=lc.n_differ(config),
        gpu=gpu,
        max_cpus=CLUSTER["cpu"].max_cpus if CLUSTER else lr.MAX_STEP_CPUS,
        max_gpu_cpus=CLUSTER["gpu"].max_cpus if "gpu" in CLUSTER else lr.GPU_MAX_CPUS,
    )


# (request, partition) of each experiment's rules: PyTorch rules on a GPU when the site has GPUs
# and the job fits one, everything else on CPUs.
PLACED = {}
for _e in EXPERIMENTS:
    _cpu, _gpu = _requests(_e, False), _requests(_e, "gpu" in CLUSTER)
    PLACED[_e] = {r: lr.placement(r, _gpu[r], _cpu[r], CLUSTER) for r in _cpu}


# Switch of each optional stage's rules: their sizes are checked only when the stage runs.
STAGE_OF_RULE = {
    **dict.fromkeys(["attacks", "plot_attacks"], "attacks"),
    **dict.fromkeys(["onion", "plot_onion"], "onion"),
    **dict.fromkeys(["panoramia_split", "panoramia_generator", "panoramia_helper",
                     "panoramia_audit", "plot_panoramia", "plot_panoramia_comparison"],
                    "panoramia"),  # fmt: skip
    **dict.fromkeys(["train_subsets", "memorization", "plot_memorization"], "memorization"),
    **dict.fromkeys(["landscape_queries", "lood_landscape", "mia_landscape", "plot_landscape"],
                    "landscape"),  # fmt: skip
    **dict.fromkeys(["optimize_query", "plot_query"], "query"),
    **dict.fromkeys(["train_influence", "tracin", "influence_function", "plot_influence"],
                    "influence"),  # fmt: skip
    **dict.fromkeys(["audit", "plot_audit"], "audit"),
    **dict.fromkeys(["inversion", "plot_inversion"], "inversion"),
}


def _runs(name, e):
    """Whether rule `name` has jobs for experiment e (its stage is switched on)."""
    stage = STAGE_OF_RULE.get(name)
    switches = {
        "mia_landscape": config["landscape"]["mia"],
        "lood_all": lc.experiment(config, e)["nngp"]["all_records"],
        "plot_lood_all": lc.experiment(config, e)["nngp"]["all_records"],
        "ntk_kernel": lc.experiment(config, e)["nngp"]["kernel"] == "ntk",
        "nngp_sigma2": lc.experiment(config, e)["nngp"]["sigma2"] == "auto",
    }
    return (not stage or bool(config[stage]["enabled"])) and bool(switches.get(name, True))


def _placed(rule, wildcards):
    """(request, partition) of the rule's job for the wildcards' experiment; for the rules about
    all experiments together (no experiment wildcard, never GPU rules) the largest request."""
    e = wildcards.get("experiment") if wildcards is not None else None
    if e:
        return PLACED[e][rule]
    reqs = [PLACED[x][rule][0] for x in EXPERIMENTS]
    fields = ("mem_mb", "runtime", "cpus", "gpus", "gpu_mem_mb")
    largest = lr.Request(*(max(getattr(r, f) for r in reqs) for f in fields))
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
    """threads and resources of rule `name` from lood.resources (memory, runtime and CPUs follow
    the experiment's sizes); with the SLURM profile's cluster settings also its partition, its
    CPUs as cpus_per_task (what sbatch gets, GPU jobs included) and, for the PyTorch rules on the
    gpu partition, one GPU. Checks every request against its partition's limits now, before any
    job is submitted."""
    for e in EXPERIMENTS:
        request, part = PLACED[e][name]
        if part is not None and _runs(name, e):
            try:
                lr.check_request(name, e, request, part)
            except ValueError as exc:
                raise WorkflowError(str(exc)) from None

    def mem_mb(wildcards):
        _not_on_slurm_without_cluster()
        return _placed(name, wildcards)[0].mem_mb

    resources = {"mem_mb": mem_mb, "runtime": lambda w: _placed(name, w)[0].runtime}
    if CLUSTER:
        resources["slurm_partition"] = lambda w: _placed(name, w)[1].name
        resources["cpus_per_task"] = lambda w: _placed(name, w)[0].cpus
    if name in lr.GPU_RULES:  # the PyTorch rules: gpu=0 when they run on CPUs, as before
        resources["gpu"] = lambda w: _placed(name, w)[0].gpus
    return SimpleNamespace(threads=lambda w: _placed(name, w)[0].cpus, resources=resources)
