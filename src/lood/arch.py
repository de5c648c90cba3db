"""Architecture description shared by the finite networks (torch) and their NNGP limit (JAX).

Kept free of torch and JAX imports so that either side can use it without paying for the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ACTIVATIONS = ("relu", "gelu")
PARAMETERIZATIONS = ("ntk", "standard")
INITS = ("normal", "torch")  # Gaussian with W_std / b_std, or nn.Linear's default (uniform)


@dataclass(frozen=True)
class Architecture:
    """A fully connected network: ``depth`` hidden layers of ``width`` units, then a linear readout.

    ``parameterization`` follows neural-tangents: with "ntk" the weights are N(0, 1) and each layer
    multiplies by ``W_std / sqrt(fan_in)`` (and the bias by ``b_std``); with "standard" the weights
    are drawn as N(0, W_std^2 / fan_in) and the biases as N(0, b_std^2). ``b_std == 0`` means no bias.

    ``init == "torch"`` instead draws the networks as ``nn.Linear`` does by default (weights and
    biases uniform on +-1/sqrt(fan_in)), which needs the standard parameterisation; W_std and b_std
    then only shape the NNGP kernel (and b_std > 0 still means the layers have biases).
    """

    depth: int
    width: int
    activation: str
    W_std: float
    b_std: float
    parameterization: str
    n_outputs: int
    init: str = "normal"

    def __post_init__(self) -> None:
        if self.depth < 0:
            raise ValueError(f"model.depth must be >= 0, got {self.depth}")
        if self.width < 1:
            raise ValueError(f"model.width must be >= 1, got {self.width}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"model.activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"model.parameterization must be one of {PARAMETERIZATIONS}, "
                f"got {self.parameterization!r}"
            )
        if self.W_std <= 0:
            raise ValueError(f"model.W_std must be > 0, got {self.W_std}")
        if self.b_std < 0:
            raise ValueError(f"model.b_std must be >= 0, got {self.b_std}")
        if self.init not in INITS:
            raise ValueError(f"model.init must be one of {INITS}, got {self.init!r}")
        if self.init == "torch" and self.parameterization != "standard":
            raise ValueError(
                "model.init: torch (nn.Linear's default initialisation) needs "
                f"model.parameterization: standard, got {self.parameterization!r}"
            )
        if self.n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {self.n_outputs}")

    @property
    def has_bias(self) -> bool:
        return self.b_std > 0

    @classmethod
    def from_config(cls, model: dict[str, Any], n_outputs: int) -> Architecture:
        """Build from the ``model`` section of a resolved experiment config."""
        return cls(
            depth=int(model["depth"]),
            width=int(model["width"]),
            activation=str(model["activation"]),
            W_std=float(model["W_std"]),
            b_std=float(model["b_std"]),
            parameterization=str(model["parameterization"]),
            n_outputs=int(n_outputs),
            init=str(model.get("init", "normal")),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
