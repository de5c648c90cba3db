# The targets of the workflow (its default target `all`): the outputs of the final rules of each stage that is switched on,
# taken from the rules that declare them (rules.<name>.output).


def outputs(name, *keys, **wildcards):
    """Output files of rule ``name`` (those under ``keys``; all without keys), for the
    wildcards."""
    output = getattr(rules, name).output
    files = []
    for value in [getattr(output, key) for key in keys] if keys else [output]:
        files += [value] if isinstance(value, str) else list(value)
    return [f.format(**wildcards) for f in files]


# Final rules of each experiment (and the outputs wanted of them; all without keys), wanted when
# the catalogue says the rule runs (its stage and switches, workflow/catalogue.py).
EXPERIMENT_TARGETS = [
    ("mia",),
    ("lood",),
    ("plot_correlation",),
    ("lood_all",),
    ("plot_lood_all",),
    ("memorization",),
    ("plot_memorization",),
    ("lood_landscape",),
    ("plot_landscape",),
    ("mia_landscape", "table"),
    ("optimize_query", "table"),
    ("plot_query",),
    ("plot_influence",),
    ("attacks",),
    ("plot_attacks",),
    ("onion",),
    ("plot_onion",),
    ("panoramia_split",),
    ("panoramia_generator", "generator", "metrics"),
    ("panoramia_audit",),
    ("plot_panoramia",),
]


def comparison_targets():
    """Outputs about all experiments together (rules/comparison.smk)."""
    wanted = {
        "plot_activation": len(EXPERIMENTS) >= 2,
        "plot_dp": any(lc.experiment(config, e)["train"]["dp"]["enabled"] for e in EXPERIMENTS),
        "plot_audit": config["audit"]["enabled"],
        "plot_inversion": config["inversion"]["enabled"],
        "plot_panoramia_comparison": config["panoramia"]["enabled"],
    }
    return [f for name, on in wanted.items() if on for f in outputs(name)]


def all_outputs():
    outs = []
    for e in EXPERIMENTS:
        for name, *keys in EXPERIMENT_TARGETS:
            if CATALOGUE.runs(name, config, e):
                outs += outputs(name, *keys, experiment=e)
    return outs + comparison_targets()
