"""Data parallel: start MindSpore's collectives, know the rank, sum numbers and average BatchNorm over ranks.

Launchers: ``msrun`` (every backend) and ``mpirun``. On GPU/Ascend ``mpirun`` is MindSpore's own path; on CPU the
collectives need the scheduler process msrun would start, which rank 0 starts instead (``engine/mpi_cluster.py``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from ..utils.errors import ConfigError
from .mpi_cluster import join_cluster_under_mpirun, mpi_world

_logger = logging.getLogger("mindcv_mobilenet")

MPI_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


@dataclass(frozen=True)
class DistInfo:
    """Rank and number of ranks of this process (0 and 1 when not distributed)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launcher(env: dict | None = None) -> str:
    """'msrun', 'mpirun' or '' from the environment the process was started in."""
    env = os.environ if env is None else env
    if "MS_ROLE" in env:  # msrun sets it (with MS_SCHED_HOST/PORT, which mpirun users may set themselves)
        return "msrun"
    if any(k in env for k in MPI_ENV):
        return "mpirun"
    return ""


def init_distributed(distribute: bool) -> DistInfo:
    """Start collectives and data parallel (averaged gradients) when asked and launched by msrun/mpirun.

    ``distribute: True`` in a process started alone (``python train.py -c <8-device recipe>``) trains on this one
    device with a warning, rather than hanging in ``init()``.
    """
    if not distribute:
        return DistInfo()
    found = launcher()
    if not found:
        _logger.warning("distribute: True but not started by msrun/mpirun: running on one device")
        return DistInfo()
    if found == "mpirun" and ms.get_context("device_target") == "CPU":
        if mpi_world() is None:
            raise ConfigError("mpirun on CPU needs Open MPI (OMPI_COMM_WORLD_* variables); with another MPI use "
                              "msrun --worker_num=N --local_worker_num=N --join=True train.py ...")
        join_cluster_under_mpirun()
    from mindspore.communication import get_group_size, get_rank, init

    init()
    size, rank = get_group_size(), get_rank()
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=size)
    return DistInfo(rank=rank, size=size)


class _AllReduceSum(nn.Cell):
    def __init__(self) -> None:
        super().__init__()
        self.all_reduce = ops.AllReduce(ops.ReduceOp.SUM)

    def construct(self, x: Tensor) -> Tensor:
        return self.all_reduce(x)


class Reducer:
    """Sums float vectors over ranks (identity on one rank); one collective call per vector."""

    def __init__(self, info: DistInfo) -> None:
        self.info = info
        self._cell = _AllReduceSum() if info.distributed else None

    def sum(self, values) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if self._cell is None:
            return array
        # AllReduce takes no float64; float32 counts stay exact up to 2**24 images per split
        flat = self._cell(Tensor(array.reshape(-1), ms.float32)).asnumpy()
        return flat.astype(np.float64).reshape(array.shape)

    def average_batchnorm(self, model: nn.Cell) -> None:
        """Average BatchNorm running statistics over ranks, so every rank (and the checkpoint) holds the same ones.

        Gradients are all-reduced but each rank's running statistics come from its own shard; averaging them at
        the end of each epoch makes the ranks' models identical (timm's ``distribute_bn``).
        """
        if self._cell is None:
            return
        stats = [p for p in model.get_parameters() if p.name.endswith((".moving_mean", ".moving_variance"))]
        if not stats:
            return
        flat = np.concatenate([p.asnumpy().reshape(-1) for p in stats])
        mean = self.sum(flat) / self.info.size
        offset = 0
        for p in stats:
            n = int(np.prod(p.shape))
            p.set_data(Tensor(mean[offset:offset + n].reshape(p.shape), p.dtype))
            offset += n
