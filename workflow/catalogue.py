"""The catalogue of the workflow's rules: for every rule of the Snakefile, what its job costs
(from the experiment's sizes, through the cost model :mod:`lood.resources.model`), whether its
PyTorch work can run on a GPU, which settings make it smaller and which stage switches it on.

Rule names are a workflow concept, so this table lives beside the rules, not in ``lood``:
``rules/placement.smk`` gives every rule its threads and resources from it, and
``python -m lood.resources`` loads it (:func:`lood.resources.cli.load_catalogue`) to print what
each job would ask for. tests/unit/resources/test_resources.py checks that it names exactly the rules of
``snakemake --list``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lood.config as lc
from lood.resources.cluster import Partition, check_request, placement
from lood.resources.model import (
    BASE_MB,
    GPU_MAX_CPUS,
    MAX_STEP_CPUS,
    SKLEARN_MB,
    Problem,
    Request,
    Training,
    data_sizes,
    ensemble_training,
    gp_lood,
    gp_queries,
    light,
    mia_seconds,
    nngp_kernel,
    round_mem,
    single_model_gradients,
    to_mb,
)

MIA_HALVES = 10
"""``lood.privacy.mia.N_HALVES`` (not imported: the catalogue loads without scipy)."""


class Sizes:
    """The numbers of one experiment (its resolved config, lood.config.experiment) that its jobs'
    costs follow. ``gpu``: the GPU rules get a GPU (the site has a GPU partition and train.device
    is not cpu); ``max_cpus`` / ``max_gpu_cpus`` cap the CPUs of CPU and GPU jobs."""

    def __init__(
        self,
        exp: Mapping[str, Any],
        *,
        n_differ: int,
        gpu: bool = False,
        max_cpus: int = MAX_STEP_CPUS,
        max_gpu_cpus: int = GPU_MAX_CPUS,
    ) -> None:
        data, model, train = exp["data"], exp["model"], exp["train"]
        self.n_differ = n_differ
        self.max_cpus, self.max_gpu_cpus = max_cpus, max_gpu_cpus
        n_source, d = data_sizes(data)
        n, n_test = int(data["n_train"]), int(data["n_test"])
        self.n, self.n_test, self.d = n, n_test, d
        self.c = len(data["classes"])
        self.width, self.depth = int(model["width"]), int(model["depth"])
        self.gpu = gpu and train.get("device", "auto") != "cpu"
        self.dp = bool(train.get("dp", {}).get("enabled", False))
        self.kernel_batch_size = int(exp["nngp"]["kernel_batch_size"])
        kernel_depth = exp["nngp"].get("depth")  # the GP's network (null: the model's)
        self.kernel_depth = self.depth if kernel_depth is None else int(kernel_depth)
        self.problem = Problem(n_train=n, d=d, n_classes=self.c, width=self.width, depth=self.depth)
        self.train_settings = Training(
            epochs=int(train["epochs"]),
            batch_size=int(train["batch_size"]),
            chunk_size=int(train.get("chunk_size") or 0),
            optimizer=str(train["optimizer"]),
            momentum=float(train["momentum"]) > 0,
            dp=self.dp,
        )

        self.n_in, self.n_out = int(train["n_in"]), int(train["n_out"])
        self.shard = min(int(train["shard_size"]), n_differ)
        self.split_mb = to_mb(4.0 * (n_source + n + n_test) * d)
        self.data_mb = to_mb(4.0 * (n + n_test) * d)
        self.n_models = self.n_in + n_differ * self.n_out
        self.splits, self.k_mia = int(exp["mia"]["n_splits"]), self.n_in + self.n_out
        self.outputs_mb = to_mb(4.0 * self.n_models * n_differ * self.c)  # all models' outputs

        self.n_targets = int(exp.get("panoramia", {}).get("n_targets", 4))
        self.k_sub = int(exp.get("memorization", {}).get("n_models", 0))
        land = exp.get("landscape", {})
        self.n_land = min(int(land.get("n_records", 0)), n_differ)
        self.n_q = self.n_land * int(land.get("n_points", 0))
        query = exp.get("query", {})
        self.n_query = min(int(query.get("n_records", 0)), n_differ)
        self.query_size = max(1, int(query.get("query_size", 1)))
        self.query_steps = int(query.get("n_steps", 0))
        infl = exp.get("influence", {})
        self.n_ckpt = max(1, int(train["epochs"]) // max(1, int(infl.get("checkpoint_every", 1))))
        if infl.get("method", "cg") == "lissa":
            self.passes = int(infl.get("lissa_depth", 1000))
        else:
            self.passes = int(infl.get("cg_max_iter", 100)) + 2
        self.hvp_block = int(infl.get("hvp_batch_size", 0)) or n
        self.n_runs = int(exp.get("audit", {}).get("n_runs", 0))
        inv = exp.get("inversion", {})
        self.n_inv, self.inv_steps = int(inv.get("n_models", 0)), int(inv.get("n_steps", 0))

    def training(self, n_models: int, n_eval: int, **kw: Any) -> Request:
        """Training ``n_models`` of the experiment's networks, evaluated on ``n_eval`` records."""
        return ensemble_training(
            self.problem,
            self.train_settings,
            n_models=n_models,
            n_eval=n_eval,
            gpu=self.gpu,
            max_cpus=self.max_gpu_cpus if self.gpu else self.max_cpus,
            **kw,
        )

    def gradients(
        self,
        n_records: int,
        passes: int,
        block: int,
        solve: bool,
        checkpoints: int = 1,
        gpu: bool | None = None,
    ) -> Request:
        """Float64 gradient work on ``checkpoints`` trained networks (on the GPU when ``gpu``;
        default: the experiment's setting)."""
        gpu = self.gpu if gpu is None else gpu
        return single_model_gradients(
            self.problem,
            n_records=n_records,
            passes=passes,
            block=block,
            solve=solve,
            checkpoints=checkpoints,
            gpu=gpu,
            max_cpus=self.max_gpu_cpus if gpu else self.max_cpus,
        )

    def kernel(self) -> Request:
        return nngp_kernel(
            n_train=self.n,
            d=self.d,
            depth=self.kernel_depth,
            batch_size=self.kernel_batch_size,
            max_cpus=self.max_cpus,
        )

    def lood(self, n_records: int) -> Request:
        return gp_lood(
            n_train=self.n, n_classes=self.c, n_records=n_records, max_cpus=self.max_cpus
        )

    def plot(self, kind: str = "plot") -> Request:
        """A figure or table job reading the experiment's data."""
        return light(data_mb=self.data_mb, kind=kind)


def _twice(request: Request) -> Request:
    return dataclasses.replace(request, mem_mb=2 * request.mem_mb, runtime=2 * request.runtime)


def _panoramia_generator(s: Sizes) -> Request:
    """The VAE trains about as long as one target model; scikit-learn's fits beside it."""
    vae = s.training(1, s.n + s.n_test)
    fits = round_mem(BASE_MB["torch"] + SKLEARN_MB + 3.0 * s.data_mb)
    return dataclasses.replace(vae, mem_mb=max(vae.mem_mb, fits))


@dataclass(frozen=True)
class Rule:
    """One rule: its job's cost, whether its PyTorch work runs on a GPU when the site has a GPU
    partition (``gpu``), the settings that make it smaller (``hint``, for the error message of a
    job above a limit), the config section whose ``enabled`` switches it on (``stage``) and any
    further switch (``when(config, experiment)``): sizes are checked only for rules that run."""

    cost: Callable[[Sizes], Request]
    gpu: bool = False
    hint: str = ""
    stage: str | None = None
    when: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None


def _all_records(config: Mapping[str, Any], exp: Mapping[str, Any]) -> bool:
    return bool(exp["nngp"]["all_records"])


RULES: dict[str, Rule] = {
    # rules/data.smk, rules/train.smk, rules/mia.smk
    "split": Rule(lambda s: light(data_mb=s.split_mb, kind="torch")),
    "train_in": Rule(
        lambda s: s.training(s.n_in, s.n_differ + s.n_test),
        gpu=True,
        hint="train.chunk_size (memory), train.n_in",
    ),
    "train_out": Rule(
        lambda s: s.training(s.shard * s.n_out, s.n_differ + s.n_test),
        gpu=True,
        hint="train.chunk_size (memory), train.shard_size (records per job)",
    ),
    # mia.csv once, mia_halves.csv on 2 halves x lood.privacy.mia.N_HALVES splits of the models
    "mia": Rule(
        lambda s: light(
            data_mb=s.outputs_mb,
            kind="numpy",
            seconds=mia_seconds(s.n_differ, s.splits, s.k_mia)
            + mia_seconds(s.n_differ * 2 * MIA_HALVES, s.splits, s.k_mia // 2),
        )
    ),
    # rules/nngp.smk: kernels (the NTK with the NNGP kernel: twice its job), LOOD from one
    # factorisation, sigma^2 by the evidence (one eigendecomposition), the onion's downdates.
    # CPU rules like every JAX rule: JAX has no CUDA in any install (README, Installing)
    "nngp_kernel": Rule(Sizes.kernel, hint="nngp.kernel_batch_size (memory), data.n_train"),
    "ntk_kernel": Rule(
        lambda s: _twice(s.kernel()), when=lambda c, e: e["nngp"]["kernel"] == "ntk"
    ),
    "nngp_sigma2": Rule(
        lambda s: s.lood(s.n_differ), when=lambda c, e: e["nngp"]["sigma2"] == "auto"
    ),
    "lood": Rule(lambda s: s.lood(s.n_differ), hint="data.n_train (N x N kernel)"),
    "lood_all": Rule(
        lambda s: s.lood(s.n),
        hint="data.n_train (N x N kernel), nngp.all_records",
        when=_all_records,
    ),
    "onion": Rule(lambda s: s.lood(s.n), stage="onion"),
    "plot_correlation": Rule(Sizes.plot),
    "plot_lood_all": Rule(Sizes.plot, when=_all_records),
    "plot_onion": Rule(Sizes.plot, stage="onion"),
    # rules/attacks.smk: every model's outputs on the differing and test records, a few copies
    "attacks": Rule(
        lambda s: light(
            data_mb=to_mb(4.0 * 4 * s.n_models * (s.n_differ + s.n_test) * s.c), kind="numpy"
        ),
        stage="attacks",
    ),
    "plot_attacks": Rule(Sizes.plot, stage="attacks"),
    # rules/memorization.smk
    "train_subsets": Rule(
        lambda s: s.training(s.k_sub, s.n + s.n_test),
        gpu=True,
        hint="train.chunk_size (memory), memorization.n_models",
        stage="memorization",
    ),
    "memorization": Rule(
        lambda s: light(
            data_mb=to_mb(8.0 * (s.n * s.n_test + s.k_sub * (s.n + s.n_test))), kind="numpy"
        ),
        stage="memorization",
    ),
    "plot_memorization": Rule(Sizes.plot, stage="memorization"),
    # rules/landscape.smk
    "landscape_queries": Rule(
        lambda s: light(data_mb=to_mb(4.0 * s.n_q * s.d), kind="numpy"), stage="landscape"
    ),
    "lood_landscape": Rule(
        lambda s: gp_queries(
            n_train=s.n, d=s.d, depth=s.kernel_depth, n_queries=s.n_q, max_cpus=s.max_cpus
        ),
        hint="landscape.n_points, landscape.n_records",
        stage="landscape",
    ),
    "train_landscape": Rule(
        lambda s: s.training(s.n_land * s.n_out, s.n_differ + s.n_q),
        gpu=True,
        hint="train.chunk_size (memory), landscape.n_records",
        stage="landscape",
        when=lambda c, e: c["landscape"]["mia"],
    ),
    "mia_landscape": Rule(
        lambda s: light(
            data_mb=s.data_mb + to_mb(8.0 * (s.n_in + s.n_out) * s.n_q * s.c),
            kind="torch",
            seconds=mia_seconds(s.n_q, s.splits, s.k_mia),
        ),
        hint="landscape.n_points, landscape.n_records",
        stage="landscape",
        when=lambda c, e: c["landscape"]["mia"],
    ),
    "plot_landscape": Rule(Sizes.plot, stage="landscape"),
    "optimize_query": Rule(
        lambda s: gp_queries(
            n_train=s.n,
            d=s.d,
            depth=s.kernel_depth,
            n_queries=s.query_size,
            n_evaluations=s.n_query * s.query_steps,
            max_cpus=s.max_cpus,
        ),
        hint="query.n_steps, query.n_records",
        stage="query",
    ),
    "plot_query": Rule(Sizes.plot, stage="query"),
    # rules/influence.smk
    "train_influence": Rule(
        lambda s: s.training(1, 0, checkpoints=s.n_ckpt),
        gpu=True,
        hint="influence.checkpoint_every",
        stage="influence",
    ),
    "tracin": Rule(
        lambda s: s.gradients(s.n_differ, 0, 1, solve=False, checkpoints=s.n_ckpt, gpu=False),
        stage="influence",
    ),
    "influence_function": Rule(
        lambda s: s.gradients(s.n_differ, s.passes, s.hvp_block, solve=True),
        gpu=True,
        hint="influence.hvp_batch_size (memory), influence.cg_max_iter",
        stage="influence",
    ),
    "plot_influence": Rule(Sizes.plot, stage="influence"),
    # rules/privacy.smk
    "audit": Rule(
        lambda s: s.training(s.n_runs, s.n + s.n_test),
        gpu=True,
        hint="train.chunk_size (memory), audit.n_runs",
        stage="audit",
    ),
    "inversion": Rule(
        lambda s: s.gradients(s.n_inv * s.c, s.inv_steps, 1, solve=True),
        gpu=True,
        hint="inversion.n_models, inversion.n_steps",
        stage="inversion",
    ),
    # rules/panoramia.smk: a small VAE, one helper model, classifiers on a few thousand rows
    "panoramia_split": Rule(lambda s: s.plot(kind="numpy"), stage="panoramia"),
    "panoramia_generator": Rule(_panoramia_generator, stage="panoramia"),
    "panoramia_helper": Rule(lambda s: s.training(1, s.n + s.n_test), stage="panoramia"),
    "panoramia_audit": Rule(
        lambda s: light(
            data_mb=to_mb(4.0 * s.n_targets * (s.n + s.n_test) * s.c) + s.data_mb, kind="torch"
        ),
        stage="panoramia",
    ),
    "plot_panoramia": Rule(Sizes.plot, stage="panoramia"),
    # rules/comparison.smk: about all experiments together (rules/placement.smk asks for the
    # largest of the experiments' requests)
    "plot_activation": Rule(Sizes.plot),
    "plot_dp": Rule(Sizes.plot),
    "plot_audit": Rule(Sizes.plot, stage="audit"),
    "plot_inversion": Rule(lambda s: s.plot(kind="torch"), stage="inversion"),  # loads networks
    "plot_panoramia_comparison": Rule(Sizes.plot, stage="panoramia"),
}

#: The rules whose PyTorch work runs on a GPU when the site has a GPU partition.
GPU_RULES = frozenset(name for name, rule in RULES.items() if rule.gpu)


def requests(
    exp: Mapping[str, Any],
    *,
    n_differ: int,
    gpu: bool = False,
    max_cpus: int = MAX_STEP_CPUS,
    max_gpu_cpus: int = GPU_MAX_CPUS,
) -> dict[str, Request]:
    """Request of every rule for one experiment (arguments as :class:`Sizes`)."""
    sizes = Sizes(exp, n_differ=n_differ, gpu=gpu, max_cpus=max_cpus, max_gpu_cpus=max_gpu_cpus)
    return {name: rule.cost(sizes) for name, rule in RULES.items()}


def placed(
    config: Mapping[str, Any], cluster: Mapping[str, Partition]
) -> dict[str, dict[str, tuple[Request, Partition | None]]]:
    """experiment -> rule -> (request, partition) for a resolved config: the GPU rules on a GPU
    when the site has GPUs and the job fits one, everything else on CPUs; CPUs capped by the
    partitions. No partitions without cluster settings (a local run)."""
    caps = {
        "max_cpus": cluster["cpu"].max_cpus if cluster else MAX_STEP_CPUS,
        "max_gpu_cpus": cluster["gpu"].max_cpus if "gpu" in cluster else GPU_MAX_CPUS,
    }
    out, n_differ = {}, lc.n_differ(config)
    for e in config["experiments"]:
        exp = lc.experiment(config, e)
        on_cpu = requests(exp, n_differ=n_differ, gpu=False, **caps)
        on_gpu = requests(exp, n_differ=n_differ, gpu="gpu" in cluster, **caps)
        out[e] = {
            name: placement(on_gpu[name] if RULES[name].gpu else None, on_cpu[name], cluster)
            for name in RULES
        }
    return out


def runs(name: str, config: Mapping[str, Any], experiment: str) -> bool:
    """Whether rule ``name`` has jobs for ``experiment`` (its stage and switches are on)."""
    rule = RULES[name]
    if rule.stage and not config[rule.stage]["enabled"]:
        return False
    return rule.when is None or bool(rule.when(config, lc.experiment(config, experiment)))


def check(
    name: str,
    config: Mapping[str, Any],
    where: Mapping[str, Mapping[str, tuple[Request, Partition | None]]],
) -> None:
    """Raise ValueError if a job of rule ``name`` that runs cannot run where it is placed
    (``where``: :func:`placed`), naming the settings that make it smaller."""
    for e, rules in where.items():
        request, part = rules[name]
        if part is not None and runs(name, config, e):
            check_request(name, e, request, part, RULES[name].hint)
