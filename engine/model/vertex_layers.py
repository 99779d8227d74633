"""Linear layers to or from every vertex coordinate, factorised when the mesh is large.

A dense d_model x V*3 layer is 9 M weights at BIWI's 23 370 vertices, most of the model's budget.
Above `cfg.vertex_layer_budget` weights such a layer becomes two: d_model -> rank -> V*3, with
`cfg.vertex_layer_rank` or (0) the largest rank that fits the budget, i.e. a learned basis of `rank` whole-face motion components (the blendshape idea: a face's
motion lives in a low-dimensional space). Meshes under the budget, the 468-vertex template among
them, keep the plain `nn.Linear` and its parameter names, so existing checkpoints load unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from engine.model.config import ModelConfig


class LowRankLinear(nn.Module):
    """y = up(down(x)): a rank-`rank` linear map with `(in + out) * rank + out` parameters."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.down(x))

    def zero_output_(self) -> None:
        """Start at y = 0 while gradients still reach `up` (down stays random)."""
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)


def dense_vertex_weights(cfg: ModelConfig, other_features: int) -> int:
    """Weights of a dense layer between `other_features` and all V*3 vertex coordinates."""
    return other_features * cfg.n_vertices * 3


def vertex_layer_rank(cfg: ModelConfig, other_features: int) -> int | None:
    """None: dense fits the budget. Else the factorisation rank (-1: the budget fits no rank)."""
    if dense_vertex_weights(cfg, other_features) <= cfg.vertex_layer_budget:
        return None
    if cfg.vertex_layer_rank > 0:
        return cfg.vertex_layer_rank
    coords = cfg.n_vertices * 3  # weights (other + coords) * rank, plus a bias on either side
    rank = (cfg.vertex_layer_budget - coords) // (other_features + coords)
    return int(rank) if rank >= 1 else -1


def vertex_linear(cfg: ModelConfig, in_features: int, out_features: int) -> nn.Linear | LowRankLinear:
    """Dense when within the budget, else low rank; one side of the layer is V*3."""
    other = in_features if out_features == cfg.n_vertices * 3 else out_features
    rank = vertex_layer_rank(cfg, other)
    if rank is None:
        return nn.Linear(in_features, out_features)
    return LowRankLinear(in_features, out_features, rank)


def zero_output_(layer: nn.Linear | LowRankLinear) -> None:
    """An output head that starts at exactly zero (the rest face)."""
    if isinstance(layer, LowRankLinear):
        layer.zero_output_()
    else:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
