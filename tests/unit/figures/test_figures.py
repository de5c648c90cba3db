"""Figure content, read back from the figure objects before they are saved: the annotated
statistics equal the tables written beside them, every panel is there and holds the data."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import lood.figures.correlation as fcorr
import lood.figures.landscape as fland
import lood.figures.privacy as fpriv
from lood.config import section_defaults
from lood.figures.common import DEFAULT_PLOTS
from lood.figures.correlation import Panel, correlation_figure, histogram_figure
from lood.figures.landscape import landscape_figure
from lood.figures.privacy import audit_figure, dp_figure
from lood.figures.spec import PlotSpec
from lood.stats import write_correlation_stats


@pytest.fixture
def captured(monkeypatch):
    """Replace save_figure in the figure modules by a capture of the figure object."""
    figs = []

    def capture(fig, outputs, dpi=150):
        fig.saved_dpi = dpi
        figs.append(fig)

    for module in (fcorr, fland, fpriv):
        monkeypatch.setattr(module, "save_figure", capture)
    return figs


def legend_numbers(ax) -> dict[str, float]:
    text = "\n".join(t.get_text() for t in ax.get_legend().get_texts())
    return {
        "pearson_r": float(re.search(r"Pearson r=(-?[0-9.]+)", text).group(1)),
        "spearman_r": float(re.search(r"Spearman ρ=(-?[0-9.]+)", text).group(1)),
        "n": int(re.search(r"n=(\d+)", text).group(1)),
    }


def test_correlation_figure_annotates_the_numbers_of_its_table(captured, tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"kl_lood": rng.lognormal(size=n)})
    df["mia_auc"] = 0.5 + 0.4 * np.tanh(df.kl_lood) + 0.05 * rng.normal(size=n)
    df["mean_dist_lood"] = rng.normal(size=n)
    df["pred_diff"] = -df.mean_dist_lood + rng.normal(size=n)
    panels = [
        Panel("kl_lood", "mia_auc", "KL", "AUC", logx=True),
        Panel("mean_dist_lood", "pred_diff", "MD", "PD"),
    ]
    rows = correlation_figure(df, panels, [tmp_path / "f.png"])
    write_correlation_stats(rows, tmp_path / "correlation.csv", logging.getLogger("test"))
    table = pd.read_csv(tmp_path / "correlation.csv")
    (fig,) = captured
    assert len(fig.axes) == len(panels)
    for ax, panel, (_, row) in zip(fig.axes, panels, table.iterrows(), strict=True):
        x, y = df[panel.x].to_numpy(), df[panel.y].to_numpy()
        # the table holds the independent statistics ...
        assert row.pearson_r == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
        assert row.spearman_r == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)
        # ... and the figure annotates the same numbers, on a panel holding every record
        shown = legend_numbers(ax)
        assert shown["pearson_r"] == pytest.approx(row.pearson_r, abs=0.005)
        assert shown["spearman_r"] == pytest.approx(row.spearman_r, abs=0.005)
        assert shown["n"] == n == int(row.n)
        points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
        np.testing.assert_allclose(np.sort(points[:n, 0]), np.sort(x))
        assert ax.get_xlabel() == panel.xlabel and ax.get_ylabel() == panel.ylabel
    assert fig.axes[0].get_xscale() == "log" and fig.axes[1].get_xscale() == "linear"


def test_histogram_counts_every_record_and_marks_the_highlighted(captured, tmp_path):
    values = np.random.default_rng(1).lognormal(size=300)
    histogram_figure(values, [tmp_path / "h.png"], "LOOD", highlight=values[:7])
    (fig,) = captured
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == len(values)
    rug = [c for c in ax.collections if len(c.get_segments())]
    assert len(rug) == 1 and len(rug[0].get_segments()) == 7


def test_landscape_figure_has_a_panel_per_record_and_curve(captured, tmp_path):
    t = np.linspace(-50, 50, 11)
    lood = pd.DataFrame(
        [
            {
                "differ_idx": r,
                "t": ti,
                "kl_lood": 1 + ti**2 / (r + 1),
                "mean_dist_lood": 0.1,
                "nngp_auc": 0.6,
            }
            for r in (4, 9, 2)
            for ti in t
        ]
    )
    mia = pd.DataFrame(
        [
            {
                "differ_idx": r,
                "t": ti,
                "mia_auc": 0.7,
                "mia_auc_std": 0.01,
                "in_score_mean": 1.0,
                "out_score_mean": 0.0,
            }
            for r in (4, 9, 2)
            for ti in t
        ]
    )
    landscape_figure(lood, mia, [tmp_path / "l.png"])
    (fig,) = captured
    titled = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(titled) == {"record 4", "record 9", "record 2"}
    assert len({ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes}) == 1  # one 2 x 3 grid
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (2, 3)
    for r in (4, 9, 2):
        ax = titled[f"record {r}"]
        twins = [a for a in fig.axes if a is not ax and a.bbox.bounds == ax.bbox.bounds]
        ys = [
            line.get_ydata()
            for a in [ax, *twins]
            for line in a.get_lines()
            if len(line.get_xdata()) == len(t)
        ]
        expected = lood[lood.differ_idx == r].kl_lood.to_numpy()
        assert any(np.allclose(y, expected) for y in ys), f"record {r}: KL curve missing"


def test_audit_figure_shows_every_run_and_the_accountant(captured, tmp_path):
    runs = pd.DataFrame(
        {
            "experiment": ["a"] * 3 + ["b"] * 2,
            "run": [0, 1, 2, 0, 1],
            "eps_lower_bound": [0.5, 0.7, 0.6, 1.2, 1.1],
            "eps_accountant": [4.0] * 3 + [np.inf] * 2,
            "confidence": 0.95,
            "r": 50,
            "v": 40,
            "m": 250,
        }
    )
    audit_figure(runs, [tmp_path / "a.png"])
    (fig,) = captured
    ax = fig.axes[0]
    shown = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())])
    for bound in runs.eps_lower_bound:
        assert np.isclose(shown, bound).any(), bound
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any("a" in lab for lab in labels) and any("b" in lab for lab in labels)


def test_dp_figure_draws_infinite_empirical_lood_at_the_top_edge(captured, tmp_path):
    """A record whose empirical LOOD is infinite (one side's scores all equal) is drawn, marked,
    at the top of the log axis, and counted in the legend; not silently dropped."""
    rows = []
    for e, eps, lood in (("dp", 2.0, [0.01, np.inf, 0.02]), ("plain", np.inf, [0.5, 0.8, 0.0])):
        for i, v in enumerate(lood):
            rows.append(
                {
                    "experiment": e,
                    "epsilon": eps,
                    "differ_idx": i,
                    "mia_auc": 0.6 + 0.1 * i,
                    "empirical_lood": v,
                    "kl_lood": 1.0 + i,
                }
            )
    dp_figure(pd.DataFrame(rows), [tmp_path / "dp.png"])
    (fig,) = captured
    ax = fig.axes[1]
    marked = [c for c in ax.collections if c.get_label().startswith("infinite")]
    assert len(marked) == 1 and marked[0].get_label().startswith("infinite (1)")
    (x, y), edge = marked[0].get_offsets()[0], 10 * 0.8
    assert x == 0 and y == pytest.approx(edge) and ax.get_ylim()[1] > edge  # dp column, on axis
    shown = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert np.isclose(shown, 1e-6).any()  # the zero, clipped to the floor: drawn too


def shown_tick_labels(ax, which: str = "x") -> list[tuple[float, str, object]]:
    """(position, text, window extent) of the tick labels drawn inside the axis limits."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    return [
        (t.get_loc(), t.label1.get_text(), t.label1.get_window_extent(renderer))
        for t in axis.get_major_ticks()
        if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.label1.get_text()
    ]


def assert_readable(labels, which: str = "x") -> None:
    assert len(labels) >= 2, labels
    for loc, text, _ in labels:  # plain numbers, at their own positions
        assert float(text) == pytest.approx(loc, rel=1e-6)
    for (_, a, box_a), (_, b, box_b) in zip(labels, labels[1:], strict=False):
        gap = box_b.x0 - box_a.x1 if which == "x" else box_b.y0 - box_a.y1
        assert gap > 0, f"tick labels {a!r} and {b!r} run together"


LOOD_RANGES = [(5e-4, 30.0), (3e-4, 0.1), (1e-3, 0.05), (0.3, 0.9), (2.0, 40.0), (1e-9, 1e6)]


@pytest.mark.parametrize(
    ("lo", "hi"), LOOD_RANGES, ids=[f"{lo:g}-{hi:g}" for lo, hi in LOOD_RANGES]
)
def test_log_lood_axes_have_tick_labels_that_do_not_run_together(captured, tmp_path, lo, hi):
    """KL LOOD over 5 decades once gave '0.00050.0010.002...' (three %g labels per decade on a
    3.6-inch panel); over 9 decades no label at all."""
    rng = np.random.default_rng(0)
    kl = np.exp(rng.uniform(np.log(lo), np.log(hi), 50))
    kl[:2] = lo, hi
    df = pd.DataFrame({"kl_lood": kl, "mia_auc": rng.uniform(0.5, 1.0, 50)})
    df["md"], df["pd"] = rng.normal(size=50), rng.normal(size=50)
    panels = [
        Panel("kl_lood", "mia_auc", "KL LOOD", "MIA AUC", logx=True),
        Panel("md", "pd", "MD", "PD"),
        Panel("kl_lood", "mia_auc", "KL", "NNGP", logx=True),
    ]
    correlation_figure(df, panels, [tmp_path / "c.png"])
    histogram_figure(kl, [tmp_path / "h.png"], xlabel="KL LOOD")
    corr, hist = captured
    assert_readable(shown_tick_labels(corr.axes[0]))
    assert_readable(shown_tick_labels(hist.axes[0]))


def test_log_y_axes_have_tick_labels_that_do_not_overlap():
    import matplotlib.pyplot as plt

    from lood.figures import log_axes

    fig, ax = plt.subplots(figsize=(3.0, 1.6))
    ax.plot([1e-4, 1e3], [1e-4, 1e3])
    log_axes(ax, y=True)
    assert_readable(shown_tick_labels(ax, "y"), "y")
    assert_readable(shown_tick_labels(ax, "x"), "x")
    plt.close(fig)


def test_figures_take_the_plots_section_whole(captured, tmp_path):
    """A PlotSpec sets dpi, style and context; without one the schema's defaults apply."""
    import matplotlib as mpl

    assert DEFAULT_PLOTS == PlotSpec.from_config(section_defaults("plots"))

    values = np.arange(1.0, 30.0)
    histogram_figure(values, [tmp_path / "a.png"], "KL")
    assert captured[-1].saved_dpi == 150 and mpl.rcParams["axes.grid"]  # whitegrid, paper
    paper_font = mpl.rcParams["font.size"]
    plots = PlotSpec(dpi=77, formats=("png",), style="ticks", context="talk")
    histogram_figure(values, [tmp_path / "b.png"], "KL", plots=plots)
    assert captured[-1].saved_dpi == 77
    assert not mpl.rcParams["axes.grid"] and mpl.rcParams["font.size"] > paper_font


def test_correlation_figure_shows_the_noise_ceiling_of_its_y(captured, tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"kl_lood": rng.lognormal(size=30)})
    df["mia_auc"] = 0.5 + 0.1 * df.kl_lood + 0.05 * rng.normal(size=30)
    df["pred_diff"] = rng.normal(size=30)
    rel = {
        "mia_auc": {
            "split_half_r": 0.6,
            "reliability": 0.81,
            "reliability_lo": 0.64,
            "reliability_hi": 0.9025,
        }
    }
    panels = [Panel("kl_lood", "mia_auc", "KL", "AUC"), Panel("kl_lood", "pred_diff", "KL", "PD")]
    rows = correlation_figure(df, panels, [tmp_path / "f.png"], reliability=rel)
    (fig,) = captured
    texts = ["\n".join(t.get_text() for t in ax.get_legend().get_texts()) for ax in fig.axes]
    assert "noise ceiling 0.90 (95% 0.80-0.95)" in texts[0]
    shown = float(re.search(r"r / ceiling=(-?[0-9.]+)", texts[0]).group(1))
    assert shown == pytest.approx(rows[0]["pearson_r"] / 0.9, abs=0.005)
    assert "ceiling" not in texts[1]  # no halves for this y: no ceiling claimed
