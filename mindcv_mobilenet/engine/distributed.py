"""Data parallel: read how the process was launched, start MindSpore's collectives, know the rank, sum numbers and
average BatchNorm over ranks.

Launchers: ``msrun`` (every backend) and ``mpirun``. On GPU/Ascend ``mpirun`` is MindSpore's own path; on CPU the
collectives need the scheduler process msrun would start, which rank 0 starts instead (``engine/mpi_cluster.py``).
This module is the one reader of the launchers' environment (:func:`launcher`, :func:`launched_ranks`,
:func:`launched_rank`, :func:`mpi_world`; ``mpi_cluster`` is handed it) and the one writer of MindSpore's cluster
variables into it: they are read before MindSpore starts its collectives, so the command
line's notes are printed once per launch and an unset ``distribute`` can mean "the ranks that were started".
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from ..utils.errors import ConfigError
from .mpi_cluster import join_cluster_under_mpirun

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


def launcher(env: Mapping[str, str] | None = None) -> str:
    """'msrun', 'mpirun' or '' from the environment the process was started in."""
    env = os.environ if env is None else env
    if "MS_ROLE" in env:  # msrun sets it (with MS_SCHED_HOST/PORT, which mpirun users may set themselves)
        return "msrun"
    if any(k in env for k in MPI_ENV):
        return "mpirun"
    return ""


def _launch_env(keys: Sequence[str], default: int, env: Mapping[str, str] | None) -> int:
    env = os.environ if env is None else env
    return next((int(env[k]) for k in keys if env.get(k, "").isdigit()), default)


def launched_ranks(env: Mapping[str, str] | None = None) -> int:
    """How many ranks msrun/mpirun started (1 when started alone), read before MindSpore starts its collectives."""
    return _launch_env(("MS_WORKER_NUM", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"), 1, env)


def launched_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank as msrun/mpirun set it (0 when started alone)."""
    return _launch_env(("RANK_ID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"), 0, env)


def mpi_world(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """(rank, size) when started by Open MPI's mpirun, else None."""
    env = os.environ if env is None else env
    if "OMPI_COMM_WORLD_SIZE" not in env:
        return None
    return int(env.get("OMPI_COMM_WORLD_RANK", "0")), int(env["OMPI_COMM_WORLD_SIZE"])


def wants_data_parallel(distribute: bool | None, env: Mapping[str, str] | None = None) -> bool:
    """``distribute`` as given; unset (None), True when msrun/mpirun started several ranks (``mpirun -n 8 python
    train.py ...``), with one note from rank 0."""
    if distribute is not None:
        return distribute
    ranks = launched_ranks(env)
    if ranks > 1 and launched_rank(env) == 0:
        print(f"note: started as {ranks} ranks and distribute unset: distribute True (data parallel)",
              file=sys.stderr, flush=True)
    return ranks > 1


def init_distributed(distribute: bool | None) -> DistInfo:
    """Start collectives and data parallel (averaged gradients) when asked (:func:`wants_data_parallel`) and launched
    by msrun/mpirun.

    ``distribute: True`` in a process started alone (``python train.py -c <8-device recipe>``) trains on this one
    device with a warning, rather than hanging in ``init()``.
    """
    if not wants_data_parallel(distribute):
        return DistInfo()
    found = launcher()
    if not found:
        _logger.warning("distribute: True but not started by msrun/mpirun: running on one device")
        return DistInfo()
    if found == "mpirun" and ms.get_context("device_target") == "CPU":
        world = mpi_world()
        if world is None:
            raise ConfigError("mpirun on CPU needs Open MPI (OMPI_COMM_WORLD_* variables); with another MPI use "
                              "msrun --worker_num=N --local_worker_num=N --join=True train.py ...")
        os.environ.update(join_cluster_under_mpirun(*world, env=os.environ))
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
