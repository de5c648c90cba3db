"""The PANORAMIA stage's jobs: :mod:`lood.privacy.panoramia` at the workflow's edge.

Each function takes parsed settings (:class:`lood.privacy.spec.PanoramiaSpec`, a training job)
and the experiment's split, and returns what its rule writes:

* :func:`member_split`: D split (seeded) into generator / attack-train / attack-test members;
* :func:`generate_nonmembers`: the class-conditional VAE trained on the generator part, the
  non-members it generates (helper data and the attack sets), its figures of merit and a grid
  of real and generated images per class for the samples figure;
* :func:`train_panoramia_helper`: the helper model, the experiment's architecture and
  optimisation *without* DP (it is the auditor's model, not the audited one), trained on
  generated data only by the ensemble trainer, and its outputs on the attack sets;
* :func:`audit_saved_models`: the baseline and an MIA per target, the first ``n_targets`` in
  models of the experiment read from their safetensors file (:class:`Targets`).

Seeds: the member split, the generator, the non-members and the classifiers derive from
``panoramia.seed``; the helper model from ``train.seed`` and ``panoramia.seed``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import pandas as pd

from lood.arch import Architecture
from lood.data.split import Split
from lood.io import load_npz, savez
from lood.jobs.training import Job, fit_ensemble
from lood.privacy.panoramia import (
    AttackSets,
    ConditionalVAE,
    MemberSplit,
    PanoramiaResult,
    VAEConfig,
    build_attack_sets,
    model_outputs,
    panoramia_audit,
    real_data_classifier,
    split_members,
    train_generator,
)
from lood.privacy.spec import PanoramiaSpec
from lood.seeds import derive_seed
from lood.train.models import load_params, n_models, select_models
from lood.train.primitives import accuracy

HELPER_SETS = ("attack_train", "attack_test", "test")  # where the helper's outputs are kept


def member_split(n_train: int, spec: PanoramiaSpec) -> MemberSplit:
    """The seeded split of D's ``n_train`` records into the three PANORAMIA parts."""
    spec.sizes(n_train)  # names the key when the fractions do not fit
    return split_members(n_train, spec.fractions, derive_seed(spec.seed, "panoramia", "split"))


def save_member_split(path: str | os.PathLike[str], members: MemberSplit) -> None:
    """Write the member split (indices into D) as an ``.npz``."""
    savez(path, **{k: np.asarray(v, dtype=np.int64) for k, v in vars(members).items()})


def load_member_split(path: str | os.PathLike[str]) -> MemberSplit:
    """Read a member split written by :func:`save_member_split` (never unpickles)."""
    arrays = load_npz(path)
    missing = [k for k in MemberSplit.__dataclass_fields__ if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not a PANORAMIA member split, missing arrays {missing}")
    return MemberSplit(**{k: arrays[k] for k in MemberSplit.__dataclass_fields__})


@dataclasses.dataclass
class Generated:
    """What :func:`generate_nonmembers` returns."""

    model: ConditionalVAE
    sets: AttackSets
    metrics: pd.DataFrame  # one row: sizes, negative ELBO, sample accuracy, seconds
    grid: dict[str, np.ndarray]  # real / generated [C, n_examples, d] raw-space images


def _example_grid(
    split: Split, members: MemberSplit, model: ConditionalVAE, spec: PanoramiaSpec
) -> dict[str, np.ndarray]:
    """The first ``n_examples`` generator-part images of each class beside as many samples of
    it, in the raw pixel space (NaN where a class has fewer real images)."""
    k, c, d = spec.n_examples, split.n_classes, split.n_features
    real = np.full((c, k, d), np.nan, dtype=np.float32)
    g = members.generator
    for cls in range(c):
        idx = g[split.y_train[g] == cls][:k]
        if len(idx):
            real[cls, : len(idx)] = split.unnormalize(split.x_train[idx])
    labels = np.repeat(np.arange(c), k)
    seed = derive_seed(spec.seed, "panoramia", "grid")
    samples = model.sample(labels, seed=seed, temperature=spec.generator.temperature)
    generated = split.unnormalize(samples).reshape(c, k, d)
    return {
        "real": real,
        "generated": generated.astype(np.float32),
        "image_shape": np.asarray(split.image_shape, dtype=np.int64),
        "classes": np.asarray(split.classes, dtype=np.int64),
    }


def generate_nonmembers(
    split: Split, members: MemberSplit, spec: PanoramiaSpec, log: logging.Logger | None = None
) -> Generated:
    """Train the VAE on the generator part of D and draw every non-member from it.

    Figures of merit (``metrics``): the negative ELBO per record at the first and last epoch
    and the *sample accuracy*, the accuracy on the generated attack-test non-members of a
    logistic regression trained on the generator part (for reference, the same classifier on
    the real attack-test members: ``real_accuracy``). Samples that look like their class score
    close to the real records; this says nothing about sharpness, which the baseline measures.
    """
    log = log or logging.getLogger("lood.panoramia")
    x, y = split.x_train, split.y_train
    g = members.generator
    vae_cfg = VAEConfig(**spec.generator.vae_settings())
    log.info("training the VAE (%s) on %d generator-part records", vae_cfg, len(g))
    every = max(1, vae_cfg.epochs // 5)

    def progress(epoch: int, loss: float) -> None:
        if (epoch + 1) % every == 0 or epoch + 1 == vae_cfg.epochs:
            log.info("VAE epoch %d/%d: negative ELBO %.2f", epoch + 1, vae_cfg.epochs, loss)

    t0 = time.perf_counter()
    model, fit = train_generator(
        x[g],
        y[g],
        split.n_classes,
        vae_cfg,
        derive_seed(spec.seed, "panoramia", "generator"),
        progress,
    )
    temperature = spec.generator.temperature

    def source(labels: np.ndarray, seed: int) -> np.ndarray:
        return model.sample(np.asarray(labels, dtype=np.int64), seed=seed, temperature=temperature)

    sets = build_attack_sets(x, y, members, source, spec.helper_size(len(y)), seed=spec.seed)
    fake = ~sets.test_member
    at = members.attack_test
    judge = real_data_classifier(x[g], y[g])
    metrics = pd.DataFrame(
        [
            {
                "n_generator": len(g),
                "n_helper": len(sets.y_helper),
                "n_attack_train": len(sets.y_train),
                "n_attack_test": len(sets.y_test),
                "n_test_members": int(sets.test_member.sum()),
                "epochs": vae_cfg.epochs,
                "neg_elbo_first": float(fit.loss_history[0]),
                "neg_elbo_last": float(fit.loss_history[-1]),
                "sample_accuracy": float(
                    judge.score(sets.x_test[fake].astype(np.float64), sets.y_test[fake])
                ),
                "real_accuracy": float(judge.score(x[at].astype(np.float64), y[at])),
                "temperature": temperature,
                "seconds": time.perf_counter() - t0,
            }
        ]
    )
    row = metrics.iloc[0]
    log.info(
        "VAE trained in %.1fs; sample accuracy %.3f (real held-out members %.3f); "
        "%d helper, %d attack-train, %d attack-test records (%d members)",
        fit.seconds,
        row.sample_accuracy,
        row.real_accuracy,
        row.n_helper,
        row.n_attack_train,
        row.n_attack_test,
        row.n_test_members,
    )
    return Generated(model, sets, metrics, _example_grid(split, members, model, spec))


def train_panoramia_helper(
    job: Job, sets: AttackSets, spec: PanoramiaSpec
) -> dict[str, np.ndarray]:
    """Train the helper model on the generated helper data with the job's architecture and
    optimisation, DP-SGD switched off; its outputs ``outputs_<set>`` [1, n, C] on the attack
    sets and the real test set, ``test_acc`` (real test records), ``seeds``, ``train_loss``."""
    train = dataclasses.replace(job.train, dp=dataclasses.replace(job.train.dp, enabled=False))
    helper_job = dataclasses.replace(job, train=train)
    generated = dataclasses.replace(job.split, x_train=sets.x_helper, y_train=sets.y_helper)
    seeds = np.array([derive_seed(job.train.seed, "panoramia_helper", spec.seed)], np.int64)
    masks = np.ones((1, len(sets.y_helper)), dtype=bool)
    job.log.info(
        "%s: training the helper model on %d generated records (%s, no DP) on %s",
        job.where,
        len(sets.y_helper),
        job.arch,
        job.device,
    )
    evals = {"attack_train": sets.x_train, "attack_test": sets.x_test, "test": job.split.x_test}
    result = fit_ensemble(helper_job, masks, seeds, evals, split=generated)
    test_acc = accuracy(result.outputs["test"], job.split.y_test)
    job.log.info("%s: helper accuracy on the real test records %.4f", job.where, test_acc[0])
    arrays = {f"outputs_{k}": result.outputs[k].astype(np.float32) for k in HELPER_SETS}
    arrays |= {
        "test_acc": test_acc.astype(np.float32),
        "train_loss": np.asarray(result.final_train_loss, dtype=np.float32),
        "seeds": seeds,
    }
    return arrays


@dataclasses.dataclass(frozen=True)
class Targets:
    """The audited models: the experiment's in models (trained on all of D) in a stacked
    safetensors file, their architecture and training loss (the MIA's features)."""

    weights: str | os.PathLike[str]
    arch: Architecture
    loss: str
    experiment: str  # the name every table's first column gets


def audit_saved_models(
    sets: AttackSets,
    helper: dict[str, np.ndarray],
    targets: Targets,
    split: Split,
    spec: PanoramiaSpec,
    threads: int | None = None,
    log: logging.Logger | None = None,
) -> PanoramiaResult:
    """PANORAMIA of the first ``spec.n_targets`` models of ``targets``.

    Every table gets an ``experiment`` column first; the summary also ``target_test_acc``
    (the target's accuracy on the real test records) and ``helper_test_acc``.
    """
    arch, loss, experiment = targets.arch, targets.loss, targets.experiment
    log = log or logging.getLogger("lood.panoramia")
    params, _ = load_params(targets.weights)
    k = min(spec.n_targets, n_models(params))
    params = select_models(params, list(range(k)))
    log.info(
        "auditing %d target models with a %s baseline and MIA (raw inputs: %s)",
        k,
        spec.classifier,
        spec.use_inputs,
    )
    result = panoramia_audit(
        sets,
        helper["outputs_attack_train"],
        helper["outputs_attack_test"],
        model_outputs(params, arch, sets.x_train),
        model_outputs(params, arch, sets.x_test),
        spec,
        loss=loss,
        threads=threads,
    )
    result.summary["target_test_acc"] = accuracy(
        model_outputs(params, arch, split.x_test), split.y_test
    )
    result.summary["helper_test_acc"] = float(np.asarray(helper["test_acc"]).mean())
    for table in (result.summary, result.thresholds, result.curves):
        table.insert(0, "experiment", experiment)
    for row in result.summary.itertuples():
        log.info(
            "target %d: c_lb %.3f (baseline %d/%d), {c+eps}_lb %.3f (MIA %d/%d), "
            "eps_tilde %.3f, ceiling %.3f; AUC baseline %.3f, MIA %.3f",
            row.target,
            row.c_lb,
            row.baseline_v,
            row.baseline_r,
            row.c_plus_eps_lb,
            row.mia_v,
            row.mia_r,
            row.eps_tilde,
            row.ceiling,
            row.baseline_auc,
            row.mia_auc,
        )
    return result
