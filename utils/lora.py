"""Low-rank adaptation (LoRA, Hu et al. 2021) in a few lines, for the chapter 04 model organism.

A frozen linear layer ``y = W x`` gets a trainable low-rank update::

    y = W x + s · B (A x),     A: (r, d_in),  B: (d_out, r),  s = alpha / r

``B`` starts at zero, so training starts from the unchanged model; only ``A`` and ``B`` are trained
(about 3 % of the parameters at r = 16 on every projection of SmolLM2-135M). After training the update
can be folded into the weight, ``W ← W + s · B A``, which leaves a plain model with no extra cost at
inference: that is how :func:`merge_lora` loads the shipped adapter.

The course writes its own short implementation instead of depending on ``peft``: nothing here needs more, and a
learner can read all of it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# The seven projections of a Llama-style block (SmolLM2 uses this architecture).
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _lora_linear_class() -> type:
    import torch
    from torch import nn

    class LoRALinear(nn.Module):
        """``base(x) + scale * (x @ A.T) @ B.T`` with ``base`` frozen."""

        def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
            super().__init__()
            self.base, self.scale = base, alpha / rank
            self.A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))  # (r, d_in)
            self.B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))  # (d_out, r)
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # same init as nn.Linear; B = 0 keeps f unchanged
            base.weight.requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (..., d_in)
            return self.base(x) + (x @ self.A.T) @ self.B.T * self.scale

    return LoRALinear


def add_lora(model: Any, rank: int = 16, alpha: float = 32.0, targets: tuple[str, ...] = TARGETS) -> dict[str, Any]:
    """Freeze ``model`` and wrap every ``nn.Linear`` whose name ends in one of ``targets``.

    Returns ``{module_name: LoRALinear}``; the model is modified in place.
    """
    from torch import nn

    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    lora_cls = _lora_linear_class()
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped: dict[str, Any] = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.split(".")[-1] in targets:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            wrapped[name] = lora_cls(module, rank, alpha)
            setattr(parent, child, wrapped[name])
    if not wrapped:
        raise ValueError(f"no nn.Linear named like {targets} in the model: nothing to adapt")
    return wrapped


def lora_state(wrapped: dict[str, Any]) -> dict[str, "torch.Tensor"]:
    """The trainable tensors, ``{"<module>.A": (r, d_in), "<module>.B": (d_out, r)}``, detached on the CPU."""
    state = {}
    for name, module in wrapped.items():
        state[f"{name}.A"] = module.A.detach().cpu().contiguous()
        state[f"{name}.B"] = module.B.detach().cpu().contiguous()
    return state


def save_adapter(path: str | Path, state: dict[str, "torch.Tensor"], config: dict[str, Any]) -> None:
    """Write the adapter as safetensors (fp16, half the size; merging is done in fp32) with ``config``
    (rank, alpha, base model, training facts) as JSON metadata."""
    import torch
    from safetensors.torch import save_file

    for key in ("rank", "alpha"):
        if key not in config:
            raise ValueError(f"adapter config needs {key!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.to(torch.float16) for k, v in state.items()}, str(tmp), metadata={"config": json.dumps(config)})
    tmp.replace(path)  # never leave a half-written adapter in place


def load_adapter(path: str | Path) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Read an adapter written by :func:`save_adapter`: ``(state, config)``, tensors in fp32."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: rebuild it with `python -m utils.af.train_organism`")
    with safe_open(str(path), framework="pt") as f:
        config = json.loads((f.metadata() or {}).get("config", "{}"))
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    return state, config


def merge_lora(model: Any, state: dict[str, "torch.Tensor"], rank: int, alpha: float) -> int:
    """Fold the adapter into ``model``'s weights in place, ``W ← W + (alpha/rank) · B A``.

    Returns the number of layers changed. Raises if a module named in ``state`` is missing or its
    shape disagrees, so an adapter for another model is refused instead of half-applied.
    """
    import torch

    names = sorted({k.rsplit(".", 1)[0] for k in state})
    with torch.no_grad():
        for name in names:
            try:
                weight = model.get_submodule(name).weight  # (d_out, d_in)
            except AttributeError as err:
                raise ValueError(f"adapter names {name!r}, which this model does not have: wrong base model?") from err
            delta = state[f"{name}.B"] @ state[f"{name}.A"] * (alpha / rank)
            if delta.shape != weight.shape:
                raise ValueError(f"adapter shape {tuple(delta.shape)} != weight {tuple(weight.shape)} at {name}")
            weight += delta.to(weight.device, weight.dtype)
    return len(names)
