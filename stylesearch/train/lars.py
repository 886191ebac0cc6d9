"""LARS (You et al. 2017) as SimCLR uses it: SGD with momentum where each weight matrix's
step is scaled by trust * ||w|| / ||g + wd * w||. Biases and BatchNorm parameters (1-d) are
neither adapted nor decayed, following SimCLR's reference implementation."""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6, trust: float = 1e-3) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "trust": trust})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:  # weights: decay and layer-wise trust ratio
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = p.norm(), grad.norm()
                    if w_norm > 0 and g_norm > 0:
                        grad = grad.mul(group["trust"] * w_norm / g_norm)
                buf = self.state[p].get("momentum")
                buf = grad.clone() if buf is None else buf.mul_(group["momentum"]).add_(grad)
                self.state[p]["momentum"] = buf
                p.add_(buf, alpha=-group["lr"])
        return loss
