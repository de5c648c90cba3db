"""Check what an install resolves to before downloading it: file collisions and unpinned CUDA
wheels in ``pip install --dry-run --report``.

    python benchmarks/gpu_stack.py                 # resolve '.[all,dev,gpu]' against PyPI
    python benchmarks/gpu_stack.py --report R.json # check a report pip already wrote

Two wheels writing the same path overwrite each other silently, in pip's install order (the
CUDA 12 cuDNN of jax[cuda12] over torch's CUDA 13 one, for example); a CUDA wheel that no
requirement pins (``==``) resolves to whatever NVIDIA released last. Each wheel's file list is
read from its zip central directory with HTTP range requests (a few hundred KB per wheel, not
the multi-GB wheels themselves); PEP 658 metadata has no RECORD, so it cannot answer this. The
central directory also gives the wheel's size (pip's report has none). Prints one line per
collision and per unpinned CUDA wheel and the download size; exit 1 when there is either.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"


class HttpRange:
    """A remote file read through HTTP range requests: the seek, tell and read zipfile needs
    (each read one request; zipfile reads the central directory in one)."""

    def __init__(self, url: str) -> None:
        self.url, self.pos = url, 0
        self.size = int(self._get(0, 0)[1])

    def _get(self, start: int, end: int) -> tuple[bytes, str]:
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            if resp.status != 206:
                raise OSError(f"{self.url}: no range support (HTTP {resp.status})")
            return resp.read(), resp.headers["Content-Range"].rpartition("/")[2]

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end <= self.pos:
            return b""
        data = self._get(self.pos, end - 1)[0]
        self.pos += len(data)
        return data


def isolated_pip_env() -> dict[str, str]:
    """This process's environment without pip's settings: no PIP_* variables, no config file, so
    pip sees only the index given on its command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def installed_path(name: str) -> str | None:
    """Where a wheel member lands in the environment (site-packages-relative, scripts under
    bin/); None for the wheel's own .dist-info, which is unique per distribution."""
    top, _, rest = name.partition("/")
    if top.endswith(".dist-info") or name.endswith("/"):
        return None
    if top.endswith(".data"):
        scheme, _, rest = rest.partition("/")
        return {"purelib": rest, "platlib": rest}.get(scheme, f"<{scheme}>/{rest}")
    return name


def wheel_files(url: str) -> tuple[list[str], int]:
    """The paths a wheel installs and its size in bytes, from its central directory."""
    remote = HttpRange(url)
    with zipfile.ZipFile(remote) as zf:  # type: ignore[arg-type]
        names = [p for p in (installed_path(n) for n in zf.namelist()) if p is not None]
    return names, remote.size


#: Collisions that are not part of the CUDA stack and are accepted, with the reason.
KNOWN = {
    ("neural-tangents", "opacus"): "both ship a top-level examples/ package (CPU install too); "
    "lood never imports it",
}


def collisions(files: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """path -> the distributions writing it, for every path more than one writes."""
    owners: dict[str, list[str]] = defaultdict(list)
    for dist, paths in files.items():
        for path in paths:
            owners[path].append(dist)
    return {p: sorted(d) for p, d in sorted(owners.items()) if len(d) > 1}


def is_cuda_wheel(name: str) -> bool:
    """NVIDIA's CUDA library wheels and JAX's CUDA plugins."""
    name = canonicalize_name(name)
    return name.startswith("nvidia-") or name.startswith(("jax-cuda", "jaxlib-cuda"))


def pinned(spec: str) -> bool:
    """Whether a version specifier fixes one release: ==X, ==X.Y.Z.* (three or more parts:
    NVIDIA's cuda-toolkit pins its wheels so, e.g. ==13.1.1.3.*), or >=X,<=X."""
    clauses = [c.strip() for c in spec.split(",") if c.strip()]
    for c in clauses:
        if c.startswith("==") and (not c.endswith(".*") or c.lstrip("=").count(".") >= 3):
            return True
    low = {c[2:] for c in clauses if c.startswith(">=")}
    return bool(low & {c[2:] for c in clauses if c.startswith("<=")})


def unpinned_cuda(report: Mapping[str, Any], constraints: Iterable[str] = ()) -> list[str]:
    """The resolved CUDA wheels no requirement pins: neither a resolved distribution's
    requirement (markers evaluated for the report's environment; for what was asked for, with
    the extras asked for, else with any extra) nor a constraint."""
    env = dict(report.get("environment") or default_environment())
    specs: dict[str, list[str]] = defaultdict(list)
    for line in constraints:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                specs[canonicalize_name(req.name)].append(str(req.specifier))
    items = report["install"]
    # the extras asked of a dependency are not in the report: any of them may be
    every_extra = {"", *(e for it in items for e in it["metadata"].get("provides_extra", []))}
    for it in items:
        extras = {"", *it["requested_extras"]} if it.get("requested") else every_extra
        for text in it["metadata"].get("requires_dist", []):
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras):
                specs[canonicalize_name(req.name)].append(str(req.specifier))
    return sorted(
        f"{it['metadata']['name']} {it['metadata']['version']}"
        for it in items
        if is_cuda_wheel(it["metadata"]["name"])
        and not any(pinned(s) for s in specs[canonicalize_name(it["metadata"]["name"])])
    )


def resolve(
    target: str,
    constraints: Path | None = ROOT / "constraints.txt",
    python: str = sys.executable,
    index_url: str = PYPI,
) -> dict[str, Any]:
    """``pip install --dry-run --report`` of ``target`` with ``python``'s pip against
    ``index_url`` alone: no pip config files, no PIP_* variables (a site's local wheels and
    mirrors stay out)."""
    env = isolated_pip_env()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [
            python,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "-q",
            "--index-url",
            index_url,
            "--report",
            str(out),
        ]
        cmd += ["-c", str(constraints)] if constraints else []
        subprocess.run(
            cmd + ["-e", target] if target.startswith(("/", ".")) else cmd + [target],
            check=True,
            env=env,
        )
        return json.loads(out.read_text())


def check(report: Mapping[str, Any], constraints: Iterable[str] = ()) -> dict[str, Any]:
    """File collisions, unpinned CUDA wheels and download sizes of a pip report's wheels."""
    wheels = {
        it["metadata"]["name"]: it["download_info"]["url"]
        for it in report["install"]
        if it["download_info"]["url"].endswith(".whl")
    }
    with ThreadPoolExecutor(8) as pool:
        listed = dict(zip(wheels, pool.map(wheel_files, wheels.values()), strict=True))
    sizes = {name: size for name, (_, size) in listed.items()}
    found = collisions({name: files for name, (files, _) in listed.items()})
    return {
        "resolved": {it["metadata"]["name"]: it["metadata"]["version"] for it in report["install"]},
        "collisions": {p: d for p, d in found.items() if tuple(d) not in KNOWN},
        "known_collisions": {p: d for p, d in found.items() if tuple(d) in KNOWN},
        "unpinned_cuda": unpinned_cuda(report, constraints),
        "download_bytes": sum(sizes.values()),
        "cuda_download_bytes": sum(s for n, s in sizes.items() if is_cuda_wheel(n)),
        "sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", type=Path, help="a pip --report JSON (default: resolve now)")
    ap.add_argument("--target", default=f"{ROOT}[all,dev,gpu]", help="what to resolve")
    ap.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    ap.add_argument("--json", type=Path, help="write the full result here")
    args = ap.parse_args(argv)
    report = (
        json.loads(args.report.read_text())
        if args.report
        else resolve(args.target, args.constraints)
    )
    lines = args.constraints.read_text().splitlines() if args.constraints else []
    result = check(report, lines)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    by_pair: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path, dists in result["collisions"].items():
        by_pair[tuple(dists)].append(path)
    for dists, paths in by_pair.items():
        print(f"COLLISION {' and '.join(dists)}: {len(paths)} paths, e.g. {paths[0]}")
    for path, dists in result["known_collisions"].items():
        print(f"known collision {' and '.join(dists)}: {path} ({KNOWN[tuple(dists)]})")
    for wheel in result["unpinned_cuda"]:
        print(f"UNPINNED CUDA wheel {wheel}")
    gb = 1e9
    print(
        f"{len(result['resolved'])} distributions, {len(result['collisions'])} colliding paths, "
        f"downloads {result['download_bytes'] / gb:.2f} GB (CUDA wheels "
        f"{result['cuda_download_bytes'] / gb:.2f} GB)"
    )
    return 1 if result["collisions"] or result["unpinned_cuda"] else 0


if __name__ == "__main__":
    sys.exit(main())
