"""The attack stage's tables: the training jobs' arrays arranged for :mod:`lood.privacy.mia.attacks`,
and per-record, pooled, ROC and free-in-model results of every attack (no torch, no matplotlib).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from lood.privacy.metrics import per_record_auc, roc_curve
from lood.privacy.mia.evaluation import attack_statistics, free_in_comparison, pooled_table
from lood.privacy.mia.pools import AttackInputs
from lood.privacy.spec import AttacksSpec


def _test_outputs(models: dict[str, np.ndarray], what: str) -> np.ndarray:
    if "outputs_test" not in models:
        raise ValueError(
            f"{what} has no outputs_test (written by the training jobs since the attacks stage); "
            "retrain it: snakemake --forcerun train_in train_out"
        )
    return models["outputs_test"]


def stack_models(
    differ: pd.DataFrame,
    models_in: dict[str, np.ndarray],
    models_out: Sequence[dict[str, np.ndarray]],
) -> AttackInputs:
    """Arrange ``in.npz`` and the ``out_<shard>.npz`` arrays (:func:`lood.jobs.training.train_role`)
    by the order of ``differ`` (its ``differ_idx`` and ``label`` columns).

    Raises ValueError when a differing record has no out models, a shard holds a record twice or
    one that is not differing, the models were evaluated on other differing records, or the
    population outputs (``outputs_test``) are missing.
    """
    differ_idx = differ["differ_idx"].to_numpy(dtype=np.int64)
    position = {int(r): j for j, r in enumerate(differ_idx)}
    if "differ_idx" in models_in and not np.array_equal(models_in["differ_idx"], differ_idx):
        raise ValueError("in models were evaluated on other differing records than differ.csv")
    in_test = _test_outputs(models_in, "in.npz")
    p = len(differ_idx)
    out_differ: list[np.ndarray | None] = [None] * p
    out_test: list[np.ndarray | None] = [None] * p
    for n, shard in enumerate(models_out):
        shard_test = _test_outputs(shard, f"out shard {n}")
        for s, record in enumerate(shard["records"]):
            j = position.get(int(record))
            if j is None or out_differ[j] is not None:
                raise ValueError(
                    f"out shard {n}: record {int(record)} is not differing or repeated"
                )
            out_differ[j], out_test[j] = shard["outputs_differ"][s], shard_test[s]
    missing = [int(differ_idx[j]) for j in range(p) if out_differ[j] is None]
    if missing:
        raise ValueError(f"no out models found for differing records {missing[:10]}")
    return AttackInputs(
        labels=differ["label"].to_numpy(dtype=np.int64),
        in_outputs=np.asarray(models_in["outputs_differ"]),
        out_outputs=np.stack(out_differ),  # type: ignore[arg-type]
        in_test=np.asarray(in_test),
        out_test=np.stack(out_test),  # type: ignore[arg-type]
    )


def attack_auc_columns(per_record: pd.DataFrame) -> list[str]:
    """The ``<attack>_auc`` columns of ``attacks/per_record.csv``, in file order."""
    return [c for c in per_record.columns if c.endswith("_auc")]


class AttackTables(NamedTuple):
    """What the ``attacks`` rule writes (see :func:`attack_tables`)."""

    per_record: pd.DataFrame
    pooled: pd.DataFrame
    roc: dict[str, np.ndarray]
    free_in: pd.DataFrame
    free_in_summary: pd.DataFrame


def attack_tables(
    differ: pd.DataFrame, inputs: AttackInputs, y_test: np.ndarray, spec: AttacksSpec
) -> AttackTables:
    """Every attack of :func:`lood.privacy.mia.evaluation.attack_statistics`, evaluated per record and
    pooled, and the online attacks without and with free in models.

    * ``per_record``: ``differ_idx``, ``label`` and per attack ``<attack>_auc``,
      ``<attack>_p_value`` (one-sided Mann-Whitney, in models positive);
    * ``pooled``: one row per attack (:func:`lood.privacy.mia.evaluation.pooled_table`): ``auc``,
      ``balanced_accuracy``, ``n_pos``, ``n_neg``, ``tpr@<alpha>``, ``fp_allowed@<alpha>``;
    * ``roc``: ``attacks`` (names) and per attack ``<attack>_fpr``, ``<attack>_tpr``,
      ``<attack>_threshold`` of the pooled ROC curve;
    * ``free_in``: per record and online attack, the AUC and p-value with the record's own in
      models as in reference (``auc``) and with the other records' out models added
      (``auc_free_in``), and ``auc_change``;
    * ``free_in_summary``: per online attack, mean and standard deviation over records of both
      AUCs, their changes, and the records significant at p < 0.05 either way.
    """
    inputs = inputs._replace(test_labels=np.asarray(y_test))
    stats = attack_statistics(inputs, spec)
    per_record = differ[["differ_idx", "label"]].reset_index(drop=True).copy()
    roc: dict[str, np.ndarray] = {"attacks": np.array(list(stats))}
    for name, (t_in, t_out) in stats.items():
        table = per_record_auc(t_in, t_out)
        per_record[f"{name}_auc"] = table.auc.to_numpy()
        per_record[f"{name}_p_value"] = table.p_value.to_numpy()
        curve = roc_curve(t_in, t_out)
        for col in ("fpr", "tpr", "threshold"):
            roc[f"{name}_{col}"] = curve[col].to_numpy()
    pooled = pooled_table(stats, spec.alphas)
    free = free_in_comparison(inputs, spec)
    free.insert(0, "differ_idx", per_record.differ_idx.to_numpy()[free.record.to_numpy()])
    free.insert(1, "label", per_record.label.to_numpy()[free.record.to_numpy()])
    free = free.drop(columns="record")
    free["auc_change"] = free.auc_free_in - free.auc
    rows = []
    for name, g in free.groupby("attack", sort=False):
        rows.append(
            {
                "attack": name,
                "n_records": len(g),
                "mean_auc": g.auc.mean(),
                "mean_auc_free_in": g.auc_free_in.mean(),
                "mean_change": g.auc_change.mean(),
                "std_auc": g.auc.std(ddof=1),
                "std_auc_free_in": g.auc_free_in.std(ddof=1),
                "std_change": g.auc_free_in.std(ddof=1) - g.auc.std(ddof=1),
                "mean_abs_change": g.auc_change.abs().mean(),
                "n_significant": int((g.p_value < 0.05).sum()),
                "n_significant_free_in": int((g.p_value_free_in < 0.05).sum()),
                "n_in_pool": int(g.n_in_pool.iloc[0]),
                "n_in_pool_free_in": int(g.n_in_pool_free_in.iloc[0]),
            }
        )
    return AttackTables(per_record, pooled, roc, free, pd.DataFrame(rows))
