"""A lean AdamW for tiny models, without torch.optim's start-up cost.

Every ``torch.optim`` optimizer imports ``torch._dynamo`` on its first call (its
methods are wrapped to opt out of the compiler, and ``step`` inserts a graph break).
That import takes 1.4-2.3 s here, which is more than the whole of training the bigram
to val 2.50 (about 0.5 s), and 5% of the GPT's 36-second recipe. ``LeanAdamW`` does
the same decoupled-weight-decay Adam update with a handful of in-place tensor ops and
never touches the compiler, so a run pays only for what it computes. On CPU that
per-parameter loop is also what ``torch.optim.AdamW`` runs (its multi-tensor
``foreach`` path is the default only on accelerators, and was measured no faster here
for the GPT: see benchmarks/gpt_cpu_tuning.py), so nothing is given up.

It keeps torch's interface where the trainer and the checkpoints use it:
``param_groups`` (a list of dicts whose ``lr`` the schedule sets), ``zero_grad``,
``step``, and ``state_dict``/``load_state_dict`` in torch's layout (state keyed by
parameter index, groups listing indices), so resume files look the same.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, cast

import torch

from bigramlm.models.base import LanguageModel
from bigramlm.config import TrainConfig


class LeanAdamW:
    """AdamW (Loshchilov & Hutter): the update of ``torch.optim.AdamW`` without amsgrad."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        given = list(params)  # tensors, or groups: the first item says which (as in torch.optim)
        groups: list[dict[str, Any]] = ([dict(g) for g in cast("list[dict[str, Any]]", given)]
                                        if given and isinstance(given[0], dict) else [{"params": given}])
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.param_groups: list[dict[str, Any]] = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {
                        "step": torch.tensor(0.0),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
                state["step"] += 1
                step = state["step"].item()
                grad, exp_avg, exp_avg_sq = p.grad, state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - lr * weight_decay)  # decoupled weight decay
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias1 = 1 - beta1**step
                bias2_sqrt = math.sqrt(1 - beta2**step)
                denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-lr / bias1)

    def state_dict(self) -> dict[str, Any]:
        index: dict[torch.Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index[p] = len(index)
                ids.append(index[p])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[p]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("optimizer state has a different number of parameter groups")
        params = [p for group in self.param_groups for p in group["params"]]
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items() if k != "params"})
        self.state = {}
        for pid, saved in state_dict["state"].items():
            p = params[int(pid)]
            self.state[p] = {
                "step": torch.as_tensor(saved["step"], dtype=torch.float32).clone(),
                "exp_avg": saved["exp_avg"].to(p).clone(),
                "exp_avg_sq": saved["exp_avg_sq"].to(p).clone(),
            }


def wants_lean_optimizer(device: str | torch.device) -> bool:
    """Every CPU run: the update is torch's own CPU one, minus the compiler import.

    On accelerators ``torch.optim.AdamW`` keeps its multi-tensor and fused kernels.
    """
    return torch.device(device).type == "cpu"


def make_optimizer(model: LanguageModel, config: TrainConfig) -> "torch.optim.Optimizer | LeanAdamW":
    """AdamW over the model's own parameter groups (the GPT decays matrices only)."""
    params = model.optimizer_groups(config.weight_decay)
    betas = (config.beta1, config.beta2)
    if wants_lean_optimizer(config.device):
        # The same AdamW update, bit for bit, without torch.optim's 1.4-2.3 s import of
        # the compiler (see the module docstring): most of a bigram run, 5% of the GPT's 36 s.
        return LeanAdamW(params, lr=config.learning_rate, betas=betas, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.learning_rate, betas=betas, weight_decay=config.weight_decay)
