"""Whether a load may be shared by the ranks of a torch.distributed group.

The decision follows runai-model-streamer 0.17.1, so that the drop-in behaves as the
reference does with the same environment:

- ``RUNAI_STREAMER_DIST``: "0" never, "1" whenever the group allows it (gloo included),
  "auto" (the default) only with NCCL; any other value is an error naming the variable;
- torch.distributed must be initialised with more than one rank;
- the backend must suit the device (NCCL moves device tensors, gloo host tensors).

Reading once per group and broadcasting is not implemented yet: when the decision is yes,
every rank still reads everything (correct, but each byte leaves storage once per rank),
and the caller logs why at INFO.
"""
from __future__ import annotations

import os
from typing import NamedTuple

DIST_ENV = "RUNAI_STREAMER_DIST"


class Decision(NamedTuple):
    distributed: bool
    reason: str  # why not, or what was decided, for an INFO line


def decide(requested: bool, device: str) -> Decision:
    """The decision for a load on ``device`` ("cpu", "cuda", "cuda:N", ...)."""
    if not requested:
        return Decision(False, "not requested")
    mode = os.environ.get(DIST_ENV, "auto")
    if mode not in ("0", "1", "auto"):
        raise ValueError(f"Invalid value for {DIST_ENV}: {mode!r} (use 0, 1 or auto)")
    if mode == "0":
        return Decision(False, f"{DIST_ENV}=0")
    try:
        import torch.distributed as dist
    except ImportError:
        return Decision(False, "torch is not installed")
    if not dist.is_available() or not dist.is_initialized():
        return Decision(False, "Torch distributed is not initialized")
    if dist.get_world_size() < 2:
        return Decision(False, "the process group has one rank")
    backend = dist.get_backend()
    on_host = device == "cpu"
    if backend == "nccl" and on_host:
        return Decision(False, f"backend {backend} is not supported for the CPU device")
    if backend == "gloo" and not on_host:
        return Decision(False, f"backend {backend} is not supported for device {device}")
    if mode == "auto" and backend != "nccl":
        return Decision(False, f"backend {backend} is used only with {DIST_ENV}=1")
    return Decision(True, f"{dist.get_world_size()} ranks on backend {backend}")
