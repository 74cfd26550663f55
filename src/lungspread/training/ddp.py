"""Multi-GPU / multi-node training through ``torchrun`` (PyTorch DistributedDataParallel).

``torchrun --nproc_per_node N -m lungspread train ...`` starts N processes and tells each its
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (and the rendezvous address) in the environment:
that is torchrun's launcher protocol, read here and nowhere else, not configuration. With
``WORLD_SIZE`` > 1 the trainer joins the process group (NCCL on GPUs, gloo on CPUs), splits
each batch over the processes, averages gradients with DDP, and lets rank 0 alone validate
and write files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, number of processes, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when torchrun started this process as one of several."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def init_distributed(device: torch.device) -> DistContext:
    """Join torchrun's process group when there is one; otherwise a single-process context."""
    if not launched_by_torchrun():
        return DistContext(device=device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap_model(net: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DDP-wrapped network when distributed, else the network itself."""
    if not ctx.distributed:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)
