"""What torch objects lose in a pickle and a local cell would still have, restored after a graph is unpickled.

An LR scheduler wraps its optimizer's `step` (an instance attribute) to check that `optimizer.step()` runs before
`scheduler.step()`; `Optimizer.__getstate__` drops that attribute, so after a plain unpickle every
`scheduler.step()` warns "optimizer.step() has been overridden after learning rate scheduler initialization",
which the same cell run in the notebook never says. The wrapper is put back, as torch's own scheduler does.
"""
from __future__ import annotations

import functools
import sys
import weakref
from typing import Any, Iterable


def after_unpickle(objects: Iterable[Any]) -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    scheduler_type = getattr(torch.optim.lr_scheduler, "LRScheduler", None)
    if scheduler_type is None:
        return
    for obj in objects:
        if isinstance(obj, scheduler_type):
            optimizer = getattr(obj, "optimizer", None)
            if optimizer is not None and not hasattr(optimizer.step, "_wrapped_by_lr_sched"):
                optimizer.step = _track_step_called(optimizer)


def _track_step_called(optimizer: Any) -> Any:
    step = type(optimizer).step
    optimizer_ref = weakref.ref(optimizer)

    @functools.wraps(step)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opt = optimizer_ref()
        opt._opt_called = True  # type: ignore[union-attr]
        return step(opt, *args, **kwargs)

    wrapper._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
    return wrapper
