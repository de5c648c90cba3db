"""The attack stage's tables: arranging the training jobs' arrays and evaluating every attack."""

import numpy as np
import pandas as pd
import pytest
from helpers import TINY
from sklearn.metrics import roc_auc_score

from lood.privacy.mia.tables import attack_auc_columns, attack_tables, stack_models
from lood.privacy.signals import lira_score
from lood.privacy.spec import AttacksSpec

SPEC = dict(
    enabled=True,
    score="lira",
    variance="per_record",
    rmia_a=0.3,
    rmia_gamma=1.0,
    free_in=False,
    alphas=[0.01, 0.001, 0.0],
)


def _job_arrays(rng, differ_idx, k=6, m=10, c=2, leak=None):
    """in.npz and out shards as train_role writes them (records of a shard in shuffled order)."""
    p = len(differ_idx)
    labels = rng.integers(0, c, p)
    leak = np.zeros(p) if leak is None else np.asarray(leak, float)
    sign = np.where(np.arange(c) == labels[:, None], 1.0, -1.0)  # [P, C]
    models_in = {
        "outputs_differ": (rng.normal(size=(k, p, c)) + leak[:, None] * sign).astype(np.float32),
        "outputs_test": rng.normal(size=(k, m, c)).astype(np.float32),
        "differ_idx": np.asarray(differ_idx),
    }
    out_differ = rng.normal(size=(p, k, p, c)) + leak[:, None] * sign
    own = np.arange(p)
    out_differ[own, :, own, :] -= (leak[:, None] * sign)[:, None, :]
    out_test = rng.normal(size=(p, k, m, c))
    shards = []
    for positions in ([2, 0], [1, 3]):
        shards.append(
            {
                "records": np.asarray(differ_idx)[positions],
                "outputs_differ": out_differ[positions].astype(np.float32),
                "outputs_test": out_test[positions].astype(np.float32),
            }
        )
    differ = pd.DataFrame({"differ_idx": differ_idx, "label": labels})
    return differ, models_in, shards, out_differ.astype(np.float32), out_test.astype(np.float32)


def test_stack_models_orders_out_models_by_differing_record():
    rng = np.random.default_rng(0)
    differ, models_in, shards, out_differ, out_test = _job_arrays(rng, [17, 4, 30, 8])
    inputs = stack_models(differ, models_in, shards[::-1])
    np.testing.assert_array_equal(inputs.out_outputs, out_differ)
    np.testing.assert_array_equal(inputs.out_test, out_test)
    np.testing.assert_array_equal(inputs.in_outputs, models_in["outputs_differ"])
    np.testing.assert_array_equal(inputs.labels, differ.label)
    with pytest.raises(ValueError, match=r"no out models found for differing records \[4, 8\]"):
        stack_models(differ, models_in, shards[:1])
    with pytest.raises(ValueError, match="repeated"):
        stack_models(differ, models_in, [shards[0], shards[0], shards[1]])
    old = {k: v for k, v in models_in.items() if k != "outputs_test"}
    with pytest.raises(ValueError, match="in.npz has no outputs_test.*forcerun"):
        stack_models(differ, old, shards)
    with pytest.raises(ValueError, match="other differing records"):
        stack_models(differ.iloc[::-1], models_in, shards)


def test_attack_tables_per_record_pooled_and_free_in():
    rng = np.random.default_rng(1)
    differ, models_in, shards, out_differ, _ = _job_arrays(rng, [17, 4, 30, 8], leak=[0, 3, 0, 1])
    inputs = stack_models(differ, models_in, shards)
    y_test = rng.integers(0, 2, 10)
    tables = attack_tables(differ, inputs, y_test, AttacksSpec.from_config(SPEC))
    attacks = ["score", "lira_online", "lira_offline", "rmia_online", "rmia_offline"]
    per = tables.per_record
    assert list(per.columns[:2]) == ["differ_idx", "label"]
    assert attack_auc_columns(per) == [f"{a}_auc" for a in attacks]
    assert {f"{a}_p_value" for a in attacks} <= set(per.columns)
    # the raw score's AUC, recomputed independently (sklearn) from the stored outputs
    for j, (record, label) in enumerate(zip(differ.differ_idx, differ.label, strict=True)):
        s_in = lira_score(models_in["outputs_differ"][:, j].astype(float), label)
        s_out = lira_score(out_differ[j, :, j].astype(float), label)
        expect = roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))], np.r_[s_in, s_out])
        assert per.loc[per.differ_idx == record, "score_auc"].item() == pytest.approx(expect)
    assert per.loc[1, "lira_online_auc"] > 0.9 and per.loc[1, "lira_online_p_value"] < 0.01
    pooled = tables.pooled
    assert list(pooled.attack) == attacks and pooled.auc.between(0, 1).all()
    assert (pooled.n_neg == 4 * 6).all() and (pooled["fp_allowed@0.01"] == 0).all()
    assert list(tables.roc["attacks"]) == attacks
    for a in attacks:
        fpr, tpr = tables.roc[f"{a}_fpr"], tables.roc[f"{a}_tpr"]
        assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
        assert np.trapezoid(tpr, fpr) == pytest.approx(pooled.set_index("attack").auc[a])
    free = tables.free_in
    assert list(free.attack.unique()) == ["lira_online", "rmia_online"]
    assert list(free.differ_idx[:4]) == list(differ.differ_idx)
    lira = free[free.attack == "lira_online"].reset_index(drop=True)
    np.testing.assert_allclose(lira.auc, per.lira_online_auc)  # free_in off: the main table
    np.testing.assert_allclose(lira.auc_change, lira.auc_free_in - lira.auc)
    summary = tables.free_in_summary.set_index("attack")
    assert summary.loc["lira_online", "mean_auc_free_in"] == pytest.approx(lira.auc_free_in.mean())
    assert summary.loc["lira_online", "std_change"] == pytest.approx(
        lira.auc_free_in.std() - lira.auc.std()
    )
    assert summary.loc["lira_online", "n_in_pool_free_in"] == 6 + 3 * 6
    # free_in on: the main table's online attacks are the free-in column
    on = attack_tables(differ, inputs, y_test, AttacksSpec.from_config(SPEC | {"free_in": True}))
    np.testing.assert_allclose(on.per_record.lira_online_auc, lira.auc_free_in)
    np.testing.assert_allclose(on.per_record.lira_offline_auc, per.lira_offline_auc)


def test_rmia_a_auto_tunes_offline_a_per_record_and_leaves_online_alone():
    """attacks.rmia_a: auto (schema and spec) gives offline RMIA with tune_rmia_a's per-record a;
    online RMIA does not use a, so it is the same as with a fixed a."""
    import lood.config as lc
    from lood.privacy.mia.attacks import rmia_loo, tune_rmia_a
    from lood.privacy.mia.evaluation import attack_statistics
    from lood.privacy.mia.pools import record_pools
    from lood.privacy.signals import true_class_log_prob

    rng = np.random.default_rng(4)
    differ, models_in, shards, _, _ = _job_arrays(rng, [5, 9, 2, 7], leak=[0.5, 0.0, 1.0, 0.3])
    inputs = stack_models(differ, models_in, shards)
    y_test = rng.integers(0, 2, 10)
    inputs = inputs._replace(test_labels=y_test)
    auto = AttacksSpec.from_config({**SPEC, "rmia_a": "auto"})

    import yaml

    cfg = yaml.safe_load(TINY.read_text())
    for value, ok in (("auto", True), (0.7, True), ("tuned", False), (1.5, False)):
        cfg["attacks"] = {"rmia_a": value}
        if ok:
            lc.validate(lc.with_defaults(cfg))
        else:
            with pytest.raises(ValueError, match="rmia_a"):
                lc.validate(lc.with_defaults(cfg))
    got = attack_statistics(inputs, auto)
    fixed = attack_statistics(inputs, AttacksSpec.from_config(SPEC))
    for pool in (0, 1):
        np.testing.assert_array_equal(got["rmia_online"][pool], fixed["rmia_online"][pool])
    lp_in, lp_out, _ = record_pools(
        inputs.in_outputs, inputs.out_outputs, inputs.labels, "log_prob"
    )
    lz_in = true_class_log_prob(inputs.in_test, y_test)
    lz_out = true_class_log_prob(inputs.out_test, y_test)
    a = tune_rmia_a(lp_in, lp_out, lz_in, lz_out)
    want = rmia_loo(lp_in, lp_out, lz_in, lz_out, True, a)
    for pool in (0, 1):
        np.testing.assert_array_equal(got["rmia_offline"][pool], want[pool])
