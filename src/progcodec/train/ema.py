"""An exponential moving average of the weights as they train (Polyak averaging).

Batches of two crops, as on two CPU cores, make each step's weights noisy; the
average over the last ~1/(1 - decay) steps sits nearer the loss's floor, and costs
one in-place lerp a step. The average starts from the weights it is switched on with,
so it needs no bias correction; it travels in the checkpoint, and the export writes
it in place of the weights of the last step::

    step ─► optimizer.step() ─► average ← average + (1 - decay)·(weights - average)
                                                │
    export (end, --max-minutes) ◄───────────────┘
"""

from __future__ import annotations

import torch


class WeightAverage:
    """The average of ``params`` ((name, parameter) pairs), ``decay`` per step."""

    def __init__(self, params: list[tuple[str, torch.nn.Parameter]], decay: float, step: int):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay is within (0, 1), not {decay}")
        self.names = [name for name, _ in params]
        self.live = [p for _, p in params]
        self.average = [p.detach().clone() for p in self.live]
        self.decay, self.start_step = decay, step

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [p.detach() for p in self.live], 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "start_step": self.start_step,
                "average": dict(zip(self.names, self.average))}

    def load_state_dict(self, state: dict) -> None:
        if set(state["average"]) != set(self.names):
            raise ValueError("the checkpoint's weight average is of other parameters")
        self.average = [state["average"][name].to(p.device, p.dtype) for name, p in zip(self.names, self.live)]
        self.start_step = state["start_step"]

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Put the average in place of the live weights (for the export)."""
        for p, a in zip(self.live, self.average):
            p.copy_(a)
