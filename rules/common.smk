# Config validation and helpers shared by all rules.
import lood.config as lc

config.update(lc.with_defaults(config))
validate(config, schema="../config/schema.yaml")
try:
    lc.check_config(config)  # user files (data.path, differ.csv) are relative to the workdir
except ValueError as exc:
    raise WorkflowError(f"Invalid config: {exc}") from None

RESULTS = config["results"]
EXPERIMENTS = list(config["experiments"])
N_SHARDS = lc.n_shards(config)

wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    shard=r"\d+",


def exp(wildcards):
    """Resolved config of the experiment named by the wildcards."""
    return lc.experiment(config, wildcards.experiment)


def section(name):
    """Params function: one resolved config section of the wildcard's experiment."""
    return lambda wildcards: exp(wildcards)[name]


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


# Optional stages register a function experiment-name -> list of targets for `rule all`.
EXTRA_TARGETS = []


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
    return outs
