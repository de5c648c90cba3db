# Config loading and the helpers shared by all rules.
import lood.config as lc

# Site settings of the SLURM profile (its `config: cluster:`), not an experiment setting: taken
# out before the experiment config is loaded (rules/placement.smk reads them).
CLUSTER_SECTION = config.pop("cluster", None)
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
