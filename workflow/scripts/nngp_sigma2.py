"""Snakemake entry point: nngp.sigma2: auto, the evidence-maximising sigma2 of one GP."""

from lood.data.split import Split
from lood.io import load_npz
from lood.logs import setup_logging
from lood.nngp.evidence import choose_sigma2, write_sigma2
from lood.nngp.gp import centred_one_hot

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
gp = sm.wildcards.gp
log = setup_logging(sm.log[0], f"lood.nngp_sigma2_{gp}")
split = Split.load(sm.input.split)
K = load_npz(sm.input.ntk)["Theta"] if gp == "ntk" else load_npz(sm.input.kernel)["K"]
rec = choose_sigma2(K, centred_one_hot(split.y_train, split.n_classes), gp)
lo, hi = rec["search_range"]
log.info(
    "%s: sigma2 = %.4g (%.3g x mean diagonal %.4g) maximises the log evidence (%.6g) over "
    "[%.3g, %.3g]",
    gp,
    rec["sigma2"],
    rec["sigma2"] / rec["mean_diag"],
    rec["mean_diag"],
    rec["log_evidence"],
    lo,
    hi,
)
if rec["at_bound"]:
    log.warning(
        "%s: the evidence is largest at the end of the search range: sigma2 = %.4g is "
        "that bound, not an interior optimum (the kernel's smallest eigenvalue already acts "
        "as noise)",
        gp,
        rec["sigma2"],
    )
amp = rec["free_amplitude"]
log.info(
    "%s, kernel scale free too: sigma2 / amplitude = %.4g, amplitude %.4g, log evidence %.6g%s",
    gp,
    amp["sigma2_over_amplitude"],
    amp["amplitude"],
    amp["log_evidence"],
    " (at the bound)" if amp["at_bound"] else "",
)
write_sigma2(rec, sm.output[0])
