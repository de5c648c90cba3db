"""Architecture rules of the library, read from its imports with ``ast`` (nothing is imported):

* no import cycle between modules of ``lood`` (function-level imports count too);
* no import cycle between its first-level packages (``lood.train``, ``lood.config``, ...);
* every first-level package sits in one layer of :data:`LAYERS` and imports only packages of
  lower layers (the base modules may also import each other);
* no underscore name imported from another module;
* a module under ``lood/figures`` reaches neither torch nor jax, directly or through other modules;
* the parsed settings (``*/spec.py``, ``config``, ``settings``) reach neither torch nor jax;
* no Snakemake anywhere in the library;
* a public function (or method) anywhere in the library takes at most :data:`MAX_PARAMS`
  parameters (``self``/``cls`` not counted, ``*args``/``**kwargs`` counted): entry points take
  spec objects whole, not their fields one by one;
* no module above :data:`MAX_LINES` lines.

The layers, lowest first (what a package may import is everything below it):

0. base modules, each one file: ``arch`` ``ascent`` ``compare`` ``devices`` ``io`` ``lazy`` ``logs``
   ``seeds`` ``settings`` ``stats`` (``compare`` is a numpy table joiner that
   ``privacy.audit.dp_tables`` uses, and ``ascent`` the early-stopping test that the query
   optimisation and MI-FACE share, so both sit below the stages);
1. ``data``;
2. ``train`` (needs no data module: jobs hand it arrays);
3. the stages that build on training: ``nngp``, ``privacy``, ``influence``, independent of each
   other;
4. what reads the stages' settings or tables: ``config`` (every stage's spec, for the cross-key
   checks) and ``figures`` (torch-free plots of the stages' tables);
5. the edge: ``jobs`` (every workflow job, what ``workflow/scripts`` call) and ``resources``
   (the rules' sizes, from the config).

Package edges count every import of every module: function-level ones, ``TYPE_CHECKING``
blocks and names taken through a package's lazy ``PUBLIC`` face. Each rule is also run on a
small synthetic package with the violation planted, so the checks are shown to fail when they
should.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import REPO

PKG = REPO / "src" / "lood"
HEAVY = ("torch", "jax", "jaxlib", "neural_tangents", "opacus", "tensorflow")
MAX_PARAMS = 8
MAX_LINES = 600  # per module: a longer one mixes concerns (issue 24)
BASE = "base"
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        BASE,
        frozenset(
            {
                "lood",
                "arch",
                "ascent",
                "compare",
                "devices",
                "io",
                "lazy",
                "logs",
                "seeds",
                "settings",
                "stats",
            }
        ),
    ),
    ("data", frozenset({"data"})),
    ("train", frozenset({"train"})),
    ("stages", frozenset({"nngp", "privacy", "influence"})),
    ("config and figures", frozenset({"config", "figures"})),
    ("edge", frozenset({"jobs", "resources"})),
)


@dataclass
class Module:
    name: str
    tree: ast.Module
    is_package: bool = False
    lines: int = 0
    lood_imports: set[str] = field(default_factory=set)  # modules of the package it imports
    external: set[str] = field(default_factory=set)  # top-level names of other packages
    underscore: list[str] = field(default_factory=list)  # "_name from lood.x" violations


def parse_package(files: dict[str, str]) -> dict[str, Module]:
    """Modules by dotted name from ``{relative path: source}`` of a package named ``lood``."""
    modules = {}
    for rel, source in files.items():
        parts = list(Path(rel).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        name = ".".join(["lood", *parts])
        modules[name] = Module(name, ast.parse(source), is_pkg, len(source.splitlines()))
    for mod in modules.values():
        resolve_imports(mod, modules)
    return modules


def lazy_public(mod: Module) -> dict[str, str]:
    """A package ``__init__``'s ``PUBLIC = {name: submodule}`` (its lazy public face)."""
    for node in mod.tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PUBLIC" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return {}


def resolve_imports(mod: Module, modules: dict[str, Module]) -> None:
    package = mod.name if mod.is_package else mod.name.rsplit(".", 1)[0]
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "lood" or alias.name.startswith("lood."):
                    mod.lood_imports.add(alias.name)
                else:
                    mod.external.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not (base == "lood" or base.startswith("lood.")):
                mod.external.add(base.split(".")[0])
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    mod.lood_imports.add(sub)
                    continue
                target = modules.get(base)
                if target is not None and target.is_package:
                    public = lazy_public(target)
                    if alias.name in public:
                        mod.lood_imports.add(f"{base}.{public[alias.name]}")
                        continue
                mod.lood_imports.add(base)
                if alias.name.startswith("_") and base != mod.name:
                    mod.underscore.append(f"{alias.name} from {base} in {mod.name}")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles of a directed graph ``{node: nodes it points to}`` (each as the nodes around it)."""
    found, state, stack = [], {}, []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(graph[name]):
            if dep not in graph or dep == name:
                continue
            if state.get(dep) == 1:
                found.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return found


def package_of(module: str) -> str:
    """The first-level package (or base module) a module belongs to: ``lood.train.spec`` ->
    ``lood.train``; the root ``lood`` is its own."""
    return ".".join(module.split(".")[:2])


def package_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """First-level package -> the first-level packages its modules import (itself left out)."""
    graph: dict[str, set[str]] = {}
    for mod in modules.values():
        pkg = package_of(mod.name)
        deps = {package_of(d) for d in mod.lood_imports if d in modules}
        graph.setdefault(pkg, set()).update(deps - {pkg})
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Packages in no layer, and imports of a package that is not in a lower layer."""
    layer = {
        f"lood.{p}" if p != "lood" else p: (i, name)
        for i, (name, pkgs) in enumerate(LAYERS)
        for p in pkgs
    }
    out = [f"layer: {pkg} is in no layer of LAYERS" for pkg in sorted(graph) if pkg not in layer]
    for pkg in sorted(set(graph) & set(layer)):
        (i, name) = layer[pkg]
        for dep in sorted(graph[pkg] & set(layer)):
            (j, dep_name) = layer[dep]
            if j > i or (j == i and name != BASE):
                out.append(f"layer: {pkg} ({name}) imports {dep} ({dep_name})")
    return out


def reaches(modules: dict[str, Module], start: str, heavy=HEAVY) -> list[str]:
    """The import chain from ``start`` to a heavy package, or [] when there is none."""
    seen, queue = {start: [start]}, [start]
    while queue:
        name = queue.pop(0)
        mod = modules[name]
        for ext in sorted(mod.external):
            if ext in heavy:
                return seen[name] + [ext]
        for dep in sorted(mod.lood_imports):
            if dep in modules and dep not in seen:
                seen[dep] = seen[name] + [dep]
                queue.append(dep)
    return []


def violations(modules: dict[str, Module]) -> list[str]:
    out = [" -> ".join(c) for c in cycles({n: m.lood_imports for n, m in modules.items()})]
    packages = package_graph(modules)
    out += ["package cycle: " + " -> ".join(c) for c in cycles(packages)]
    out += layer_violations(packages)
    out += [u for m in modules.values() for u in m.underscore]
    for name in sorted(modules):
        light = name.startswith("lood.figures.") or name.endswith(".spec")
        light |= name in ("lood.config", "lood.settings", "lood.figures")
        chain = reaches(modules, name) if light else []
        if chain:
            out.append("heavy import: " + " -> ".join(chain))
        if "snakemake" in modules[name].external:
            out.append(f"snakemake imported in {name}")
        out += long_signatures(modules[name])
        if modules[name].lines > MAX_LINES:
            out.append(f"{name} has {modules[name].lines} lines (at most {MAX_LINES})")
    return out


def long_signatures(mod: Module, limit: int = MAX_PARAMS) -> list[str]:
    """Public functions (and methods) of ``mod`` with more than ``limit`` parameters."""
    out = []
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name[0] != "_":
            a = node.args
            names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
            n = len(names) - (names[:1] in (["self"], ["cls"]))
            n += (a.vararg is not None) + (a.kwarg is not None)
            if n > limit:
                out.append(f"{mod.name}.{node.name} takes {n} parameters (at most {limit})")
    return out


def package_files() -> dict[str, str]:
    return {str(p.relative_to(PKG)): p.read_text() for p in PKG.rglob("*.py")}


def test_the_library_follows_its_architecture_rules():
    modules = parse_package(package_files())
    assert {"lood.train.spec", "lood.figures.common", "lood.train.dp"} <= set(modules)
    assert {"lood.train", "lood.privacy"} <= package_graph(modules)["lood.jobs"]
    assert violations(modules) == []


def test_every_subpackage_names_its_public_face_and_it_resolves():
    modules = parse_package(package_files())
    for name, mod in modules.items():
        if mod.is_package and name != "lood":
            public = lazy_public(mod)
            assert public, f"{name}/__init__.py has no PUBLIC mapping"
            for attr, sub in public.items():
                target = modules[f"{name}.{sub}"]
                defined = {getattr(n, "name", None) for n in target.tree.body} | {
                    t.id
                    for n in target.tree.body
                    if isinstance(n, ast.Assign)
                    for t in n.targets
                    if isinstance(t, ast.Name)
                }
                assert attr in defined, f"{name}.PUBLIC[{attr!r}] is not in {name}.{sub}"


GOOD = {
    "__init__.py": "",
    "train/__init__.py": "PUBLIC = {'fit': 'ensemble'}\n",
    "train/spec.py": "import dataclasses\n",
    "train/ensemble.py": "import torch\nfrom lood.train.spec import x\n",
    "figures/__init__.py": "PUBLIC = {}\n",
    "figures/plot.py": "import matplotlib\nfrom lood.train.spec import x\n",
    "seeds.py": "import hashlib\n",
    "config.py": "from lood.train.spec import x\n",
    "nngp/__init__.py": "PUBLIC = {}\n",
    "nngp/gp.py": "import numpy\nfrom lood.seeds import s\n",
    "privacy/__init__.py": "PUBLIC = {}\n",
    "privacy/mia.py": "from lood.train.ensemble import y\n",
    "jobs/__init__.py": "PUBLIC = {'run': 'prologue'}\n",
    "jobs/prologue.py": "import logging\n",
    "jobs/training.py": "from lood.privacy.mia import m\nfrom lood.train import fit\n",
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, None),
        ({"train/spec.py": "from lood.train.ensemble import y\n"}, "lood.train.spec -> lood.train"),
        (
            {"train/spec.py": "def f():\n    import torch\n"},
            "heavy import: lood.train.spec -> torch",
        ),
        ({"figures/plot.py": "from lood.train import fit\n"}, "heavy import: lood.figures.plot"),
        (
            {"figures/plot.py": "from lood.train.ensemble import _helper\n"},
            "_helper from lood.train.ensemble",
        ),
        ({"figures/plot.py": "import snakemake\n"}, "snakemake imported in lood.figures.plot"),
        # package cycles without a module cycle: a function-level import through a lazy face
        (
            {"train/ensemble.py": "def f():\n    from lood.jobs import run\n"},
            "package cycle: lood.train -> lood.jobs -> lood.train",
        ),
        (
            {"train/ensemble.py": "from lood.config import c\n"},
            "package cycle: lood.config -> lood.train -> lood.config",
        ),
        # the layer order: a stage above its layer, siblings, a base module, an unplaced package
        (
            {"train/ensemble.py": "from lood.figures.plot import p\n"},
            "layer: lood.train (train) imports lood.figures (config and figures)",
        ),
        (
            {"privacy/mia.py": "from lood.nngp.gp import k\n"},
            "layer: lood.privacy (stages) imports lood.nngp (stages)",
        ),
        (
            {"seeds.py": "if TYPE_CHECKING:\n    from lood.privacy.mia import m\n"},
            "layer: lood.seeds (base) imports lood.privacy (stages)",
        ),
        ({"extra/__init__.py": "PUBLIC = {}\n"}, "layer: lood.extra is in no layer of LAYERS"),
        # long signatures, in any package; self and cls do not count
        (
            {"jobs/prologue.py": "def start(a, b, c, d, e, f, g, h, *, i=0):\n    pass\n"},
            "lood.jobs.prologue.start takes 9 parameters (at most 8)",
        ),
        (
            {"train/ensemble.py": "def fit(a, b, c, d, e, f, g, h, *, i=0):\n    pass\n"},
            "lood.train.ensemble.fit takes 9 parameters (at most 8)",
        ),
        (
            {
                "nngp/gp.py": "class G:\n    def fit(self, a, b, c, d, e, f, g, h, *i):\n        pass\n"
            },
            "lood.nngp.gp.fit takes 9 parameters (at most 8)",
        ),
        (
            {"nngp/gp.py": "class G:\n    def fit(self, a, b, c, d, e, f, g, h):\n        pass\n"},
            None,
        ),
        (
            {"privacy/mia.py": "def fit(a, b, c, d, e, f, g, h, i):\n    pass\n"},
            "lood.privacy.mia.fit takes 9 parameters (at most 8)",
        ),
        ({"data/split.py": "x = 0\n" * 601}, "lood.data.split has 601 lines (at most 600)"),
        ({"data/split.py": "x = 0\n" * 600}, None),
    ],
)
def test_the_checks_catch_a_planted_violation(change, expected):
    found = violations(parse_package(GOOD | change))
    if expected is None:
        assert found == []
    else:
        assert any(expected in v for v in found), found
