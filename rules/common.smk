# Config loading and the params / input helpers of the rule files (functions stay out of the
# files with rules, as `snakemake --lint` asks).
import lood.config as lc
from lood.nngp.spec import NNGPSpec

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
           for k, v in value.items()}
    if path == "train" and not out["dp"]["enabled"]:
        out["dp"] = lc.section_defaults("train.dp")
    return out


def section(path, only=(), ignore=()):
    """Params function (the way rules build params; kernel_model gives the kernels' model): the
    config value at ``path`` (e.g. ``"train"``, ``"nngp.sigma2"``) of the wildcards' experiment,
    or of the config for rules about all experiments; also callable with an experiment name.
    ``only`` / ``ignore`` name the keys of a section that change the rule's output / that do
    not."""

    def params(wildcards):
        name = wildcards if isinstance(wildcards, str) else getattr(wildcards, "experiment", None)
        value = lc.experiment(config, name) if name else config
        for key in path.split("."):
            value = value[key]
        return _neutral(path, value, set(only), set(ignore))

    return params


def kernel_model(wildcards):
    """Params function of the rules that compute NNGP / NTK kernels: the model section (less
    init: the GP has none) at the kernel's depth (nngp.depth; null: model.depth), so a change of
    nngp.depth reruns the kernels and what reads them, never the training."""
    value = exp(wildcards)
    model = _neutral("model", value["model"], set(), {"init"})
    return NNGPSpec.from_config(value["nngp"]).kernel_model(model)


def kernel_files(experiment, gp):
    """Kernel files of a GP: the NNGP kernel, and for the NTK-GP (gp = ntk) also the NTK."""
    files = {"kernel": rules.nngp_kernel.output.kernel.format(experiment=experiment)}
    if gp == "ntk":
        files["ntk"] = rules.ntk_kernel.output.ntk.format(experiment=experiment)
    return files


def gp_inputs(kernel=None):
    """Input function of a GP job: the kernel files of ``kernel`` (nngp | ntk; None: the
    experiment's nngp.kernel) and, with nngp.sigma2 auto, the sigma2 chosen for that GP."""

    def inputs(wildcards):
        nngp = exp(wildcards)["nngp"]
        gp = kernel or nngp["kernel"]
        files = kernel_files(wildcards.experiment, gp)
        if nngp["sigma2"] == "auto":
            files["sigma2"] = rules.nngp_sigma2.output[0].format(
                experiment=wildcards.experiment, gp=gp
            )
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
    """The out models of every shard of the wildcards' experiment."""
    return expand(
        rules.train_out.output.models, experiment=wildcards.experiment, shard=range(N_SHARDS)
    )


def figure_paths(stem):
    """A figure's files, one per format of plots.formats."""
    return [f"{stem}.{fmt}" for fmt in config["plots"]["formats"]]


# --- inputs of rules/nngp.smk

def gp_kernels(wildcards):
    return kernel_files(wildcards.experiment, wildcards.gp)


def correlation_inputs(wildcards):
    """mia.csv, mia_halves.csv (the noise ceiling) and lood.csv; with the attacks stage on also its
    per-record AUCs (correlation.csv gains a row per attack)."""
    files = {
        "mia": rules.mia.output[0],
        "halves": rules.mia.output.halves,
        "lood": rules.lood.output[0],
    }
    if config["attacks"]["enabled"]:
        files["attacks"] = rules.attacks.output.per_record
    return {k: v.format(experiment=wildcards.experiment) for k, v in files.items()}


# --- inputs of rules/memorization.smk

def mem_lood_table(wildcards):
    """NNGP LOOD of every record when the all-records mode is on, else of the differing records."""
    if exp(wildcards)["nngp"]["all_records"]:
        return rules.lood_all.output[0]
    return rules.lood.output[0]


# --- inputs of rules/landscape.smk

def landscape_plot_inputs(wildcards):
    files = {"lood": rules.lood_landscape.output[0].format(experiment=wildcards.experiment)}
    if config["landscape"]["mia"]:
        files["mia"] = rules.mia_landscape.output.table.format(experiment=wildcards.experiment)
    return files


# --- inputs of rules/comparison.smk (about all experiments together)

def per_experiment(path):
    """``path`` (a rule's output, with ``{experiment}``) for every experiment, by experiment."""
    return {e: path.format(experiment=e) for e in EXPERIMENTS}


def same_record_inputs():
    """mia, lood, differ and split of every experiment: what a record-by-record comparison across
    experiments reads (plot_activation, plot_dp)."""
    files = {}
    paths = {"mia": rules.mia.output[0], "lood": rules.lood.output[0],
             "differ": rules.split.output.differ, "split": rules.split.output.split}
    for key, path in paths.items():
        for e, p in per_experiment(path).items():
            files[f"{key}_{e}"] = p
    return files


def inversion_plot_inputs(wildcards):
    files = {"split": rules.split.output.split.format(experiment=EXPERIMENTS[0])}
    for e in EXPERIMENTS:
        files[f"inv_{e}"] = rules.inversion.output.arrays.format(experiment=e)
        files[f"metrics_{e}"] = rules.inversion.output.metrics.format(experiment=e)
        files[f"in_{e}"] = rules.train_in.output.models.format(experiment=e)
    if config["query"]["enabled"]:  # NNGP query optimisation of the first experiment, to compare
        files["query"] = rules.optimize_query.output.queries.format(experiment=EXPERIMENTS[0])
    return files


def panoramia_comparison_inputs(wildcards):
    """Per experiment: PANORAMIA's table, the in models (accountant epsilon), the retrained-model
    MIA, LOOD and, when on, the one-run audit."""
    files = {}
    paths = {"panoramia": rules.panoramia_audit.output.table, "in": rules.train_in.output.models,
             "mia": rules.mia.output[0], "lood": rules.lood.output[0]}
    if config["audit"]["enabled"]:
        paths["audit"] = rules.audit.output.table
    for key, path in paths.items():
        for e, p in per_experiment(path).items():
            files[f"{key}_{e}"] = p
    return files
