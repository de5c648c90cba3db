"""The one-run privacy audit job: the experiment's training with canaries, then the audit.

:mod:`lood.privacy.audit` (one_run, canaries) holds the statistics; this job
trains through :func:`lood.jobs.training.fit_ensemble`, as every training job does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lood.jobs.training import Job, fit_ensemble
from lood.privacy.audit import audit_table, canary_inclusion, canary_scores, make_canaries
from lood.privacy.spec import AuditSpec
from lood.seeds import derive_seed
from lood.train.primitives import accuracy


def one_run_audit(job: Job, audit: AuditSpec, experiment: str) -> tuple[pd.DataFrame, dict]:
    """One-run audit (Steinke et al. 2023) of this experiment's training, ``n_runs`` times.

    Canaries are records of D (mislabelled or not, :func:`lood.privacy.audit.canaries.make_canaries`),
    each in a run's training set with probability 1/2; the other records are always in. Every run
    is trained exactly as the experiment's models (DP-SGD when ``train.dp`` is on) and gives its
    own epsilon lower bound (:func:`lood.privacy.audit.audit_table`) at ``train.dp.delta``.
    Returns the table (one row per run, with the accountant's epsilon and the run's test
    accuracy) and the arrays (canary indices, labels, inclusion, scores).
    """
    split, log = job.split, job.log
    n = len(split.y_train)
    m, k_pos, k_neg = audit.sizes(n)
    runs = audit.n_runs
    idx, labels = make_canaries(
        split.y_train, m, audit.canary, split.n_classes, derive_seed(audit.seed, "canaries")
    )
    included = canary_inclusion(m, runs, derive_seed(audit.seed, "inclusion"))
    masks = np.ones((runs, n), dtype=bool)
    masks[:, idx] = included
    seeds = np.array([derive_seed(job.train.seed, "audit", audit.seed, r) for r in range(runs)])
    log.info(
        "%s: %d runs, %d %s canaries (%d in on average), %d + %d guesses per run",
        job.where,
        runs,
        m,
        audit.canary,
        int(included.sum(1).mean()),
        k_pos,
        k_neg,
    )
    canary_split = dataclasses.replace(split, y_train=labels)
    result = fit_ensemble(
        job, masks, seeds, {"canary": split.x_train[idx], "test": split.x_test}, canary_split
    )
    scores = canary_scores(result.outputs["canary"], labels[idx], audit.score)
    delta = job.train.dp.delta  # the bound's delta, DP-SGD or not
    table = audit_table(scores, included, k_pos, k_neg, delta, audit.confidence)
    table.insert(0, "experiment", experiment)
    table["delta"] = delta
    table["confidence"] = audit.confidence
    table["eps_accountant"] = result.extra["epsilon"]
    table["test_acc"] = accuracy(result.outputs["test"], split.y_test)
    table["canary_train_acc"] = [
        float((result.outputs["canary"][r].argmax(-1) == labels[idx])[included[r]].mean())
        for r in range(runs)
    ]
    for row in table.itertuples():
        log.info(
            "%s run %d: %d/%d guesses correct, epsilon lower bound %.3f (accountant %.3g), "
            "test accuracy %.3f",
            job.where,
            row.run,
            row.v,
            row.r,
            row.eps_lower_bound,
            row.eps_accountant,
            row.test_acc,
        )
    arrays = {
        "canary_idx": idx,
        "canary_labels": labels[idx],
        "included": included,
        "scores": scores,
        "seeds": seeds,
    }
    return table, arrays
