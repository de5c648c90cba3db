"""Tests of the PANORAMIA audit (lood.privacy.panoramia.audit) and its generator (lood.privacy.panoramia.generator).

Small sizes throughout (scikit-learn's 8x8 digits, d = 64, a few epochs), one torch thread.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY
from scipy.special import logit
from scipy.stats import beta as beta_dist

from lood.arch import Architecture
from lood.privacy.audit.one_run import epsilon_lower_bound
from lood.privacy.panoramia.audit import (
    SUMMARY_COLUMNS,
    AttackSets,
    bound_ceiling,
    build_attack_sets,
    guess_grid,
    model_outputs,
    output_features,
    panoramia_audit,
    per_threshold_confidence,
    pool_source,
    precision_recall,
    split_members,
    threshold_bounds,
    train_helper,
    vae_source,
)
from lood.privacy.panoramia.generator import (
    ConditionalVAE,
    VAEConfig,
    load_generator,
    sample_accuracy,
    save_generator,
    train_generator,
)
from lood.train.spec import TrainConfig

torch.set_num_threads(1)

ARCH = Architecture(
    depth=1,
    width=256,
    activation="relu",
    W_std=1.0,
    b_std=0.0,
    parameterization="ntk",
    n_outputs=10,
)
TCFG = TrainConfig(epochs=30, lr=1.0, batch_size=32, momentum=0.9)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Digits standardised (per-feature mean, one global scale) in a seeded random order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.float32) / 16.0
    x = (x - x.mean(0)) / x.std()
    perm = np.random.default_rng(0).permutation(len(x))
    return x[perm].astype(np.float32), bunch.target[perm].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The bound over thresholds


def test_all_correct_reproduces_the_one_run_audit_ceiling():
    """v = r = 50 at confidence 0.95, one threshold, no correction: log(q / (1 - q)) with
    q = 0.05^(1/50), 2.78, as the one-run audit."""
    scores = np.r_[np.linspace(1.0, 2.0, 50), np.linspace(0.0, 0.5, 70)]
    member = np.r_[np.ones(50, bool), np.zeros(70, bool)]
    perm = np.random.default_rng(1).permutation(len(scores))
    table = threshold_bounds(scores[perm], member[perm], np.array([50]), 0.95, "none")
    q = 0.05 ** (1 / 50)
    assert table.r[0] == 50 and table.v[0] == 50 and table.precision[0] == 1.0
    assert table.eps_lb[0] == pytest.approx(math.log(q / (1 - q)), abs=1e-5)
    assert table.eps_lb[0] == pytest.approx(2.78, abs=0.005)
    assert table.eps_lb[0] == pytest.approx(epsilon_lower_bound(50, 50, 50, 0.0, 0.95), abs=1e-9)
    assert bound_ceiling(50, np.array([50]), 0.95, "none") == pytest.approx(table.eps_lb[0])


def test_bonferroni_splits_the_level_over_the_thresholds():
    assert per_threshold_confidence(0.95, 20, "bonferroni") == pytest.approx(1 - 0.05 / 20)
    assert per_threshold_confidence(0.95, 20, "none") == 0.95
    grid = guess_grid(200, 20, 10)
    q = (0.05 / len(grid)) ** (1 / 100)  # largest grid r <= 100 members, all correct
    r_top = int(grid[grid <= 100].max())
    q = (0.05 / len(grid)) ** (1 / r_top)
    assert bound_ceiling(100, grid) == pytest.approx(math.log(q / (1 - q)), abs=1e-5)
    assert bound_ceiling(100, grid) < bound_ceiling(100, grid, correction="none")
    with pytest.raises(ValueError, match="correction"):
        per_threshold_confidence(0.95, 3, "holm")


@pytest.mark.parametrize("r, v", [(10, 10), (40, 33), (100, 71), (200, 101), (30, 12)])
def test_bound_is_the_clopper_pearson_limit(r, v):
    """With delta = 0 the largest q with P[Binomial(r, q) >= v] <= alpha is the Beta(v, r-v+1)
    alpha-quantile (Clopper-Pearson), an independent closed form."""
    conf = 1 - 0.05 / 7
    member = np.r_[np.ones(v, bool), np.zeros(r - v, bool), np.zeros(5, bool)]
    scores = np.r_[np.linspace(2, 1, r), np.zeros(5)]
    got = threshold_bounds(scores, member, np.array([r]), conf, "none").eps_lb[0]
    expected = max(float(logit(beta_dist.ppf(1 - conf, v, r - v + 1))), 0.0)
    assert got == pytest.approx(expected, abs=1e-5)


def test_guess_grid_and_precision_recall_by_brute_force():
    grid = guess_grid(300, 20, 10)
    assert grid[0] == 10 and grid[-1] == 300 and np.all(np.diff(grid) > 0) and len(grid) <= 20
    assert list(guess_grid(5, 20, 10)) == [5]
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, size=40).astype(float)  # many ties
    member = rng.random(40) < 0.5
    curve = precision_recall(scores, member)
    for r in range(1, 41):  # ties broken by index: the lower index ranks higher
        top = sorted(range(40), key=lambda i: (-scores[i], i))[:r]
        assert curve.v[r - 1] == member[top].sum()
        assert curve.threshold[r - 1] == scores[top[-1]]
        assert curve.precision[r - 1] == pytest.approx(member[top].sum() / r)
    assert curve.recall.iloc[-1] == 1.0


def test_multiple_threshold_correction_keeps_the_nominal_level():
    """Scores independent of membership: the best bound over 20 thresholds is > 0 in at most
    ~5% of trials with Bonferroni; without the correction, much more often."""
    rng = np.random.default_rng(7)
    n, trials = 200, 300
    grid = guess_grid(n, 20, 10)
    hits = {"bonferroni": 0, "none": 0}
    for _ in range(trials):
        member = rng.random(n) < 0.5
        scores = rng.random(n)
        for corr in hits:
            hits[corr] += threshold_bounds(scores, member, grid, 0.95, corr).eps_lb.max() > 0
    assert hits["bonferroni"] / trials <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / trials)
    assert hits["none"] > 2 * hits["bonferroni"] and hits["none"] / trials > 0.08


# ---------------------------------------------------------------------------------------------
# Data and features


def test_split_members_is_seeded_and_disjoint():
    a = split_members(100, (0.5, 0.25, 0.25), seed=3)
    b = split_members(100, (0.5, 0.25, 0.25), seed=3)
    c = split_members(100, (0.5, 0.25, 0.25), seed=4)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in vars(a))
    assert not np.array_equal(a.generator, c.generator)
    parts = np.concatenate([a.generator, a.attack_train, a.attack_test])
    assert (len(a.generator), len(a.attack_train), len(a.attack_test)) == (50, 25, 25)
    assert len(np.unique(parts)) == 100
    assert len(np.concatenate(list(vars(split_members(100, (0.2, 0.3, 0.3))).values()))) == 80
    with pytest.raises(ValueError, match="sum to at most 1"):
        split_members(100, (0.6, 0.3, 0.3))


def test_attack_sets_pair_labels_and_follow_the_coins(digits, tmp_path):
    x, y = digits
    xm, ym, xp, yp = x[:300], y[:300], x[300:], y[300:]
    split = split_members(300, (0.2, 0.4, 0.4), seed=0)
    sets = build_attack_sets(xm, ym, split, pool_source(xp, yp), n_helper=100, seed=5)
    n_tr = len(split.attack_train)
    assert sets.x_train.shape == (2 * n_tr, 64) and sets.train_member.sum() == n_tr
    assert np.array_equal(sets.y_train[:n_tr], sets.y_train[n_tr:])  # label-matched partners
    assert np.array_equal(sets.y_test, ym[split.attack_test])
    assert 0.3 < sets.test_member.mean() < 0.7
    mem = sets.test_member
    assert np.array_equal(sets.x_test[mem], xm[split.attack_test[mem]])
    assert np.array_equal(sets.test_source[mem], split.attack_test[mem])
    assert (sets.test_source[~mem] == -1).all()
    # non-members are real pool records of the right label, never repeated
    nonmem = np.concatenate([sets.x_helper, sets.x_train[n_tr:], sets.x_test[~mem]])
    nonmem_y = np.concatenate([sets.y_helper, sets.y_train[n_tr:], sets.y_test[~mem]])
    rows = [np.flatnonzero((xp == row).all(1)) for row in nonmem]
    assert all(len(r) == 1 for r in rows)
    idx = np.array([r[0] for r in rows])
    assert len(np.unique(idx)) == len(idx) and np.array_equal(yp[idx], nonmem_y)
    assert set(np.unique(sets.y_helper)) <= set(ym[split.generator])
    # seeded, and an npz round trip
    again = build_attack_sets(xm, ym, split, pool_source(xp, yp), n_helper=100, seed=5)
    assert all(np.array_equal(getattr(sets, k), getattr(again, k)) for k in vars(sets))
    sets.save(tmp_path / "sets.npz")
    loaded = AttackSets.load(tmp_path / "sets.npz")
    assert all(np.array_equal(getattr(sets, k), getattr(loaded, k)) for k in vars(sets))


def test_canary_partners_come_from_the_true_class(digits):
    x, y = digits
    xm, ym, xp, yp = x[:200], y[:200], x[200:], y[200:]
    split = split_members(200, (0.2, 0.4, 0.4), seed=0)
    wrong = ym.copy()
    wrong[split.attack_train] = (wrong[split.attack_train] + 1) % 10
    seen = {}

    def source(labels, seed):
        seen["labels"] = labels.copy()
        return pool_source(xp, yp)(labels, seed)

    sets = build_attack_sets(xm, wrong, split, source, n_helper=20, seed=0, source_labels=ym)
    n_tr = len(split.attack_train)
    assert np.array_equal(sets.y_train[n_tr:], wrong[split.attack_train])  # same wrong label
    assert np.array_equal(seen["labels"][20 : 20 + n_tr], ym[split.attack_train])  # true class


def test_output_features_by_hand():
    rng = np.random.default_rng(0)
    out = rng.normal(size=(3, 7, 4))
    lab = rng.integers(0, 4, size=7)
    f = output_features(out, lab, "mse")
    target = np.eye(4)[lab] - 0.25
    for i in range(7):
        loss = np.mean([0.5 * np.sum((out[k, i] - target[i]) ** 2) for k in range(3)])
        margin = np.mean([out[k, i, lab[i]] - np.delete(out[k, i], lab[i]).max() for k in range(3)])
        assert f[i] == pytest.approx([loss, margin])
    ce = output_features(out[0], lab, "cross_entropy")[:, 0]
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(out[0]), torch.tensor(lab), reduction="none"
    ).numpy()
    np.testing.assert_allclose(ce, expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# The audit


def _audit(sets, targets, classifier="gbdt", seed=0, helper_seed=11):
    helper = train_helper(sets.x_helper, sets.y_helper, ARCH, TCFG, [helper_seed])
    return panoramia_audit(
        sets,
        model_outputs(helper, ARCH, sets.x_train),
        model_outputs(helper, ARCH, sets.x_test),
        model_outputs(targets, ARCH, sets.x_train),
        model_outputs(targets, ARCH, sets.x_test),
        panoramia_spec(classifier=classifier, seed=seed),
        threads=1,
    )


def test_null_real_nonmembers_and_a_target_that_never_saw_the_members(digits):
    """'Generated' points are real non-members and the target trained on other records: both
    bounds are > 0 in at most the nominal fraction of seeds, and c_lb is ~0 (real vs real)."""
    x, y = digits
    xm, ym = x[:400], y[:400]
    pool_x, pool_y = x[400:1300], y[400:1300]
    target = train_helper(x[1300:], y[1300:], ARCH, TCFG, [1])  # never saw members or pool
    rows = []
    for seed in range(8):
        split = split_members(400, (0.1, 0.45, 0.45), seed=seed)
        sets = build_attack_sets(xm, ym, split, pool_source(pool_x, pool_y), 120, seed=seed)
        rows.append(_audit(sets, target, "logistic", seed, helper_seed=100 + seed).summary)
    s = pd.concat(rows)
    assert (s.c_lb > 0).sum() <= 2 and (s.c_plus_eps_lb > 0).sum() <= 2
    assert s.c_lb.max() < 0.3 and s.eps_tilde.max() < 0.3
    assert abs(s.mia_auc.mean() - 0.5) < 0.05 and abs(s.baseline_auc.mean() - 0.5) < 0.05


def test_mislabelled_canaries_raise_the_mia_bound(digits):
    """Half the attack members are mislabelled canaries (partners: mislabelled non-members of
    the same true class). The target memorises them: {c+eps}_lb and eps_tilde go up, while
    the baseline (helper only) still cannot tell real from real."""
    x, y = digits
    xm, ym = x[:500], y[:500]
    pool_x, pool_y = x[500:], y[500:]
    split = split_members(500, (0.1, 0.45, 0.45), seed=0)
    attack = np.concatenate([split.attack_train, split.attack_test])
    rng = np.random.default_rng(0)
    canaries = rng.choice(attack, size=len(attack) // 2, replace=False)
    wrong = ym.copy()
    wrong[canaries] = (ym[canaries] + rng.integers(1, 10, size=len(canaries))) % 10
    summaries = {}
    for name, labels in (("clean", ym), ("canaries", wrong)):
        targets = train_helper(xm, labels, ARCH, TCFG, [1, 2, 3])
        fit = model_outputs(targets, ARCH, xm[canaries]).argmax(-1)
        if name == "canaries":
            assert (fit == labels[canaries]).mean() > 0.6  # mostly memorised
        sets = build_attack_sets(
            xm, labels, split, pool_source(pool_x, pool_y), 250, seed=0, source_labels=ym
        )
        summaries[name] = _audit(sets, targets).summary
    clean, canary = summaries["clean"], summaries["canaries"]
    # measured: {c+eps}_lb 0.88, 1.17, 1.01 clean; 1.39, 1.30, 1.51 with canaries
    assert canary.c_plus_eps_lb.mean() > clean.c_plus_eps_lb.mean() + 0.25
    assert canary.eps_tilde.mean() > clean.eps_tilde.mean() + 0.25
    assert canary.mia_auc.mean() > clean.mia_auc.mean() + 0.02
    assert canary.c_lb.max() < 0.3 and clean.c_lb.max() < 0.3
    assert (canary.c_plus_eps_lb <= canary.ceiling).all()


def test_audit_tables_have_the_documented_shape(digits):
    x, y = digits
    split = split_members(400, (0.2, 0.4, 0.4), seed=2)
    sets = build_attack_sets(x[:400], y[:400], split, pool_source(x[400:], y[400:]), 150, 2)
    targets = train_helper(x[:400], y[:400], ARCH, TCFG, [3, 4, 5])
    res = _audit(sets, targets, "logistic")
    assert list(res.summary.columns) == SUMMARY_COLUMNS and len(res.summary) == 3
    assert res.summary.c_lb.nunique() == 1  # one baseline for all targets
    np.testing.assert_allclose(res.summary.eps_tilde, res.summary.c_plus_eps_lb - res.summary.c_lb)
    n_grid = int(res.summary.n_thresholds[0])
    assert len(res.thresholds) == 4 * n_grid and len(res.curves) == 4 * len(sets.y_test)
    assert set(res.thresholds.target) == {-1, 0, 1, 2}
    for row in res.summary.itertuples():
        mia = res.thresholds[res.thresholds.target == row.target]
        best = mia.loc[mia.eps_lb.idxmax()]
        assert (best.r, best.v, best.eps_lb) == (row.mia_r, row.mia_v, row.c_plus_eps_lb)
    assert np.isfinite(res.summary.select_dtypes("number").to_numpy()).all()


# ---------------------------------------------------------------------------------------------
# The generator


VAE_SPLIT = split_members(1000, (0.5, 0.25, 0.25), seed=0)  # D = the first 1000 digits


@pytest.fixture(scope="module")
def vae(digits):
    x, y = digits
    g = VAE_SPLIT.generator
    cfg = VAEConfig(latent_dim=8, hidden=128, epochs=15, batch_size=64, lr=3e-3)
    model, fit = train_generator(x[g], y[g], 10, cfg, seed=0)
    return model, fit


def test_vae_loss_decreases_and_samples_carry_their_labels(digits, vae):
    x, y = digits
    x, y = x[VAE_SPLIT.generator], y[VAE_SPLIT.generator]
    model, fit = vae
    assert fit.loss_history[-1] < 0.8 * fit.loss_history[0]
    assert np.all(np.isfinite(fit.loss_history))
    labels = model.sample_labels(500, seed=1)
    assert np.bincount(labels, minlength=10).min() > 20  # the training class frequencies
    samples = model.sample(labels, seed=2)
    assert samples.shape == (500, 64) and samples.dtype == np.float32
    assert samples.min() >= x.min() - 1e-5 and samples.max() <= x.max() + 1e-5
    acc = sample_accuracy(x, y, samples, labels)
    assert acc > 0.8  # chance is 0.1
    shuffled = np.random.default_rng(0).permutation(labels)
    assert sample_accuracy(x, y, samples, shuffled) < 0.3


def test_vae_is_deterministic_and_round_trips_through_safetensors(digits, vae, tmp_path):
    x, y = digits
    model, _ = vae
    cfg = model.config
    g = VAE_SPLIT.generator
    again, _ = train_generator(x[g], y[g], 10, cfg, seed=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    labels = np.arange(10)
    assert np.array_equal(model.sample(labels, seed=3), again.sample(labels, seed=3))
    assert not np.array_equal(model.sample(labels, seed=3), model.sample(labels, seed=4))
    path = tmp_path / "vae.safetensors"
    save_generator(path, model)
    loaded = load_generator(path)
    assert isinstance(loaded, ConditionalVAE) and loaded.config == cfg
    assert np.array_equal(loaded.sample(labels, seed=3), model.sample(labels, seed=3))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a lood generator"):
        load_generator(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a readable"):
        load_generator(tmp_path / "junk.safetensors")


def test_vae_end_to_end_audit(digits, vae):
    """The whole pipeline with generated non-members runs and gives bounded, consistent rows."""
    x, y = digits
    model, _ = vae
    xm, ym = x[:1000], y[:1000]
    sets = build_attack_sets(xm, ym, VAE_SPLIT, vae_source(model), 300, seed=0)
    targets = train_helper(xm, ym, ARCH, TCFG, [7])
    res = _audit(sets, targets)
    row = res.summary.iloc[0]
    assert 0 <= row.c_lb <= row.ceiling and 0 <= row.c_plus_eps_lb <= row.ceiling
    assert row.baseline_auc > 0.5  # the helper tells VAE samples from real ones
    # the ceiling is that of the test *members* (all guesses right), not of all test slots
    spec = panoramia_spec()
    grid = guess_grid(len(sets.y_test), spec.n_thresholds, spec.r_min)
    members = int(np.sum(sets.test_member))
    want = bound_ceiling(members, grid, spec.confidence, spec.correction)
    assert row.ceiling == want
    assert want < bound_ceiling(len(sets.y_test), grid, spec.confidence, spec.correction)


# ---------------------------------------------------------------------------------------------
# The workflow stage: settings, jobs and the comparison table


def panoramia_spec(**overrides):
    import lood.config as lc
    from lood.privacy.spec import PanoramiaSpec

    return PanoramiaSpec.from_config(lc.deep_merge(lc.section_defaults("panoramia"), overrides))


def test_member_counts_follow_the_split_and_bad_fractions_name_the_key(tmp_path):
    import yaml

    import lood.config as lc
    from lood.privacy.spec import member_counts

    for n, fr in [(100, (0.5, 0.25, 0.25)), (61, (0.2, 0.3, 0.3)), (5000, (0.4, 0.3, 0.3))]:
        s = split_members(n, fr, seed=1)
        assert member_counts(n, fr) == (len(s.generator), len(s.attack_train), len(s.attack_test))
    spec = panoramia_spec(fractions=[0.5, 0.25, 0.25])
    assert spec.sizes(2000) == (1000, 500, 500) and spec.helper_size(2000) == 1000
    assert panoramia_spec(n_helper=77).helper_size(2000) == 77
    with pytest.raises(ValueError, match=r"panoramia.fractions: .*too few"):
        spec.sizes(3)
    cfg = yaml.safe_load(TINY.read_text())
    cfg["panoramia"] = {"enabled": True, "fractions": [0.6, 0.3, 0.3]}
    with pytest.raises(ValueError, match=r"panoramia.fractions: .*sum to at most 1"):
        lc.load_config(cfg)
    cfg["panoramia"]["enabled"] = False  # checked only when the stage is on
    lc.load_config(cfg)


def test_stage_jobs_on_digits(digits, tmp_path):
    """Member split, generator, helper and audit of saved models, as the rules run them: the
    split is seeded and round-trips, the helper ignores the experiment's DP-SGD, the first
    n_targets saved models are the targets."""
    from helpers import make_job, split_of

    from lood.jobs.panoramia import (
        Targets,
        audit_saved_models,
        generate_nonmembers,
        load_member_split,
        member_split,
        save_member_split,
        train_panoramia_helper,
    )
    from lood.train.models import save_params
    from lood.train.primitives import accuracy

    x, y = digits
    split = split_of(x[:400], y[:400], n_test=60)
    spec = panoramia_spec(
        enabled=True,
        n_targets=2,
        classifier="logistic",
        n_examples=3,
        generator={"epochs": 3, "hidden": 32},
    )
    members = member_split(400, spec)
    save_member_split(tmp_path / "split.npz", members)
    again = load_member_split(tmp_path / "split.npz")
    assert all(np.array_equal(getattr(members, k), getattr(again, k)) for k in vars(members))
    assert np.array_equal(member_split(400, spec).generator, members.generator)
    gen = generate_nonmembers(split, members, spec)
    assert gen.grid["real"].shape == (10, 3, 64) and np.isfinite(gen.grid["generated"]).all()
    assert len(gen.sets.y_helper) == 200 and gen.metrics.n_generator[0] == 200
    model = {
        "depth": 1,
        "width": 64,
        "activation": "relu",
        "W_std": 1.4,
        "b_std": 0.0,
        "parameterization": "ntk",
    }
    train = {"epochs": 3, "batch_size": 32, "lr": 0.5, "momentum": 0.9, "device": "cpu"}
    dp = {"enabled": True, "noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-3}
    plain = train_panoramia_helper(make_job(split, model, train), gen.sets, spec)
    with_dp = train_panoramia_helper(make_job(split, model, train | {"dp": dp}), gen.sets, spec)
    for key, value in plain.items():
        np.testing.assert_array_equal(value, with_dp[key], err_msg=key)
    assert plain["outputs_attack_test"].shape == (1, len(gen.sets.y_test), 10)
    targets = train_helper(x[:400], y[:400], ARCH, TCFG, [1, 2, 3])
    save_params(tmp_path / "in_weights.safetensors", targets)
    saved = Targets(tmp_path / "in_weights.safetensors", ARCH, "mse", "digits")
    res = audit_saved_models(gen.sets, plain, saved, split, spec, threads=1)
    s = res.summary
    assert list(s.target) == [0, 1] and (s.experiment == "digits").all()
    assert (res.curves.experiment == "digits").all() and set(res.thresholds.target) == {-1, 0, 1}
    np.testing.assert_allclose(s.eps_tilde, s.c_plus_eps_lb - s.c_lb)
    acc = accuracy(model_outputs(targets, ARCH, split.x_test), split.y_test)[:2]
    np.testing.assert_allclose(s.target_test_acc, acc)


def test_comparison_table_by_hand():
    from lood.privacy.panoramia.tables import COMPARISON_COLUMNS, panoramia_comparison

    pano = pd.DataFrame(
        {
            "eps_tilde": [0.5, 1.0, 0.0],
            "c_lb": 1.0,
            "c_plus_eps_lb": [1.5, 2.0, 1.0],
            "ceiling": 3.7,
            "mia_auc": [0.6, 0.7, 0.5],
            "baseline_auc": 0.8,
            "target_test_acc": [0.9, 0.92, 0.94],
        }
    )
    audit = pd.DataFrame(
        {
            "m": 250,
            "r": 50,
            "v": [50, 40],
            "delta": 0.0,
            "confidence": 0.95,
            "eps_lower_bound": [2.78, 1.0],
        }
    )
    mia = pd.DataFrame({"mia_auc": [0.6, 0.8]})
    lood = pd.DataFrame({"kl_lood": [1.0, 3.0]})
    both = panoramia_comparison(
        {"a": math.inf, "b": 4.0},
        {"a": pano, "b": pano},
        {"a": mia, "b": mia},
        {"a": lood, "b": lood},
        {"a": audit, "b": audit},
    )
    assert list(both.columns) == COMPARISON_COLUMNS and list(both.experiment) == ["a", "b"]
    row = both.iloc[1]
    assert (row.eps_accountant, row.eps_tilde_mean, row.eps_tilde_min, row.eps_tilde_max) == (
        4.0,
        0.5,
        0.0,
        1.0,
    )
    assert row.c_plus_eps_lb_mean == pytest.approx(1.5) and row.n_targets == 3
    assert (row.audit_eps_lb_max, row.audit_eps_lb_mean, row.audit_runs) == (2.78, 1.89, 2)
    assert row.audit_ceiling == pytest.approx(math.log(0.05 ** (1 / 50) / (1 - 0.05 ** (1 / 50))))
    assert (row.mia_auc_mean, row.kl_lood_mean, row.n_records) == (0.7, 2.0, 2)
    assert row.test_acc == pytest.approx(0.92)
    no_audit = panoramia_comparison({"a": math.inf}, {"a": pano}, {"a": mia}, {"a": lood})
    assert np.isnan(no_audit.audit_eps_lb_max[0]) and no_audit.audit_runs[0] == 0
