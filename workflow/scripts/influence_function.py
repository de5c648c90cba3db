"""Snakemake entry point: influence-function self-influence of the differing records."""

from lood.jobs import log_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = log_from_snakemake(sm)  # the log first, then torch

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lood.data.split import Split  # noqa: E402
from lood.influence.functions import influence_self  # noqa: E402
from lood.influence.spec import InfluenceSpec  # noqa: E402
from lood.influence.tracin import Checkpoints  # noqa: E402
from lood.io import write_csv  # noqa: E402
from lood.train.device import pick_device  # noqa: E402

torch.set_num_threads(max(1, int(sm.threads)))
p = InfluenceSpec.from_config(sm.params.influence)
split = Split.load(sm.input.split)
differ = pd.read_csv(sm.input.differ)
idx = differ["differ_idx"].to_numpy().copy()  # writable: torch indexes with it
ck = Checkpoints.load(sm.input.checkpoints)
device = pick_device(sm.params.device, sm.resources.get("gpu", 0), log)
x = torch.tensor(split.x_train, dtype=torch.float64, device=device)
y = torch.tensor(split.y_train, dtype=torch.int64, device=device)
# the training objective's Hessian includes its L2 term: weight decay adds to the damping
damping = p.damping + ck.weight_decay
spec = InfluenceSpec.from_config(p.to_config() | {"damping": damping})
res = influence_self(ck.final, ck.arch, ck.loss, x, y, x[idx], y[idx], spec)
sol = res.solve
table = differ[["differ_idx", "label"]].assign(
    influence_function=res.self_influence,
    grad_norm=res.grad_norm,
    loss=res.loss,
    solver_iterations=sol.iterations,
    solver_residual=sol.residual,
    converged=sol.converged,
    negative_curvature=sol.negative_curvature,
)
write_csv(table, sm.output[0])
log.info(
    "influence function (%s, %s, damping %g): mean %.4g; solver iterations %d..%d, max residual "
    "%.2g, %d/%d converged, %d met negative curvature",
    p.method,
    p.curvature,
    damping,
    table.influence_function.mean(),
    sol.iterations.min(),
    sol.iterations.max(),
    sol.residual.max(),
    sol.converged.sum(),
    len(table),
    sol.negative_curvature.sum(),
)
if not sol.converged.all():
    log.warning(
        "the solver did not converge for %d records: raise influence.cg_max_iter or "
        "influence.damping (see columns solver_residual, negative_curvature)",
        (~sol.converged).sum(),
    )
