import os
import stat

import numpy as np
import pandas as pd
import pytest

from lood.io import atomic_path, load_npz, savez, write_csv


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_csv_refuses_non_finite(tmp_path):
    df = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", "y"]})
    with pytest.raises(ValueError, match="'a'.*non-finite"):
        write_csv(df, tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()
    write_csv(df, tmp_path / "t.csv", allow_nan=["a"])
    assert pd.read_csv(tmp_path / "t.csv").shape == (2, 2)


def test_savez_roundtrip_and_no_pickle(tmp_path):
    savez(tmp_path / "a.npz", x=np.arange(6).reshape(2, 3), y=np.array([0.5]))
    data = load_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(data["x"], np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="object"):
        savez(tmp_path / "b.npz", x=np.array([{"a": 1}], dtype=object))
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_npz(tmp_path / "c.npz")


def test_atomic_path_removes_stale_temporaries(tmp_path):
    stale = tmp_path / ".out.csv.abc123.tmp"
    stale.write_text("left by a killed job")
    with atomic_path(tmp_path / "out.csv") as tmp:
        assert tmp.name.startswith(".out.csv.") and tmp.suffix == ".tmp"
        tmp.write_text("a\n1\n")
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_an_uncaught_error_reaches_the_job_log(tmp_path):
    """Snakemake says 'check log file(s) for error details': the job's exception must be there."""
    import subprocess
    import sys

    log = tmp_path / "job.log"
    code = (
        "from lood.logs import setup_logging\n"
        f"setup_logging({str(log)!r}, 'lood.test')\n"
        "raise ValueError('memorization.n_models: too few models')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    text = log.read_text()
    assert "job failed: ValueError: memorization.n_models: too few models" in text
    assert "Traceback" in text
    assert proc.stderr.count("Traceback") == 1  # once on stderr, not also by Python's hook


def _binary(path):
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # as Split.save writes split.npz
        fh.write(b"x")


def _figure(path):
    import matplotlib.pyplot as plt

    from lood.figures import save_figure

    save_figure(plt.figure(figsize=(1, 1)), [path])


def _weights(path):
    torch = pytest.importorskip("torch")
    from lood.train.models import save_params

    with atomic_path(path) as tmp:  # as train_in writes in_weights.safetensors
        save_params(tmp, {"w": torch.zeros(2, 3)})


# Every way a result file is written (all go through atomic_path): name -> writer of that file.
WRITERS = {
    "table.csv": lambda p: write_csv(pd.DataFrame({"a": [1.0]}), p),
    "arrays.npz": lambda p: savez(p, x=np.arange(3)),
    "split.npz": _binary,
    "figure.png": _figure,
    "weights.safetensors": _weights,
}


@pytest.mark.parametrize("umask", [0o022, 0o077])
@pytest.mark.parametrize("name", WRITERS)
def test_results_get_the_permissions_the_umask_gives_new_files(tmp_path, umask, name):
    """0644 under umask 0022 (collaborators can read results), 0600 under 0077, as for a
    plain open(); the temporary file's 0600 from mkstemp must not survive the rename."""
    path = tmp_path / name
    old = os.umask(umask)
    try:
        WRITERS[name](path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
