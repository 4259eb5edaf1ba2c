"""MindSpore's CPU collectives under ``mpirun``: the scheduler msrun would start, started by rank 0 instead.

MindSpore's dynamic cluster is configured by environment variables (``MS_WORKER_NUM``, ``MS_SCHED_HOST``,
``MS_SCHED_PORT``, ``MS_ROLE``, ``MS_NODE_ID``) plus one scheduler process; that is all msrun does. Under Open MPI
every rank knows its rank and the world size (``OMPI_COMM_WORLD_RANK``/``_SIZE``, read by
:func:`~.distributed.mpi_world` with the other launchers' variables), rank 0 starts the scheduler, and
every rank joins as a worker. This module reads no environment of its own: ``engine/distributed.py`` hands it the
launch environment and puts the variables :func:`join_cluster_under_mpirun` returns into the process's. The
scheduler's address and port are rank 0's to choose (a free port by default, the loopback address when every rank is
on one host, else rank 0's address on the route to the host mpirun runs on); the other ranks learn them from one
``MPI_Bcast`` through Open MPI's own ``libmpi`` (ctypes, so no mpi4py), which works across hosts.
``MS_SCHED_HOST``/``MS_SCHED_PORT`` set for every rank (``mpirun -x MS_SCHED_HOST=...``) take
precedence and need no broadcast.

The scheduler runs in a session of its own so that it outlives rank 0 long enough for the other ranks to leave the
cluster cleanly; it exits by itself when every worker has left, and a watchdog process above it ends it when rank 0
has been gone for ``SCHEDULER_GRACE_S`` and it has not (a rank was killed, and mpirun ended the others).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping

from ..utils.errors import ConfigError

SCHEDULER_GRACE_S = 20  # how long the scheduler outlives rank 0 at most (the others' clean exit takes ~1 s)
_ADDRESS_BYTES = 256


def _all_ranks_local(env: Mapping[str, str]) -> bool:
    return env.get("OMPI_COMM_WORLD_LOCAL_SIZE") == env.get("OMPI_COMM_WORLD_SIZE")


def _route_address(env: Mapping[str, str]) -> str:
    """This host's address on the route to the host mpirun runs on (its URI lists its TCP addresses)."""
    uri = env.get("OMPI_MCA_orte_hnp_uri", "") or env.get("PMIX_SERVER_URI41", "") or env.get("PMIX_SERVER_URI4", "")
    targets = [part.split("://", 1)[1].split(",")[0].rsplit(":", 1)[0] for part in uri.split(";") if "://" in part]
    for target in targets:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))  # UDP: no packet is sent, the kernel only picks the route
                address = probe.getsockname()[0]
            if not address.startswith("127."):
                return address
        except OSError:
            continue
    return _first_outward_address()


def _first_outward_address() -> str:
    """The first non-loopback IPv4 address of this host (``gethostname`` often resolves to 127.0.1.1)."""
    import psutil  # a MindSpore dependency

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    raise ConfigError("mpirun on CPU across hosts: no network address found for the scheduler; set MS_SCHED_HOST "
                      "(rank 0's address) and MS_SCHED_PORT for every rank with mpirun -x")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def choose_scheduler_address(env: Mapping[str, str]) -> tuple[str, int]:
    """Rank 0's choice: ``MS_SCHED_HOST``/``MS_SCHED_PORT`` when set in ``env``, else the address above and a free
    port."""
    host = env.get("MS_SCHED_HOST") or ("127.0.0.1" if _all_ranks_local(env) else _route_address(env))
    port = int(env["MS_SCHED_PORT"]) if env.get("MS_SCHED_PORT", "").isdigit() else _free_port(host)
    return host, port


def _broadcast_from_rank0(text: str) -> str:
    """Rank 0's ``text`` on every rank, through Open MPI's ``MPI_Bcast`` (MPI initialised and finalised here)."""
    name = ctypes.util.find_library("mpi")
    try:
        lib = ctypes.CDLL(name or "libmpi.so.40", mode=ctypes.RTLD_GLOBAL)  # its plugins need its symbols global
        comm_world = ctypes.c_void_p.in_dll(lib, "ompi_mpi_comm_world")
        mpi_char = ctypes.c_void_p.in_dll(lib, "ompi_mpi_char")
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"mpirun on CPU: cannot use Open MPI's libmpi to share the scheduler's address ({err}); install Open "
            "MPI's library (Debian: openmpi-bin), or set MS_SCHED_HOST and MS_SCHED_PORT for every rank "
            "(mpirun -x MS_SCHED_HOST=<rank 0's address> -x MS_SCHED_PORT=<free port>), or use msrun"
        ) from None
    # read by MPI_Init from this process's environment: the data pipeline forks after MPI_Finalize
    os.environ.setdefault("OMPI_MCA_mpi_warn_on_fork", "0")
    buffer = ctypes.create_string_buffer(text.encode()[:_ADDRESS_BYTES - 1], _ADDRESS_BYTES)
    if lib.MPI_Init(None, None) != 0:
        raise ConfigError("mpirun on CPU: MPI_Init failed; set MS_SCHED_HOST and MS_SCHED_PORT for every rank")
    try:
        if lib.MPI_Bcast(buffer, _ADDRESS_BYTES, ctypes.byref(mpi_char), 0, ctypes.byref(comm_world)) != 0:
            raise ConfigError("mpirun on CPU: MPI_Bcast of the scheduler's address failed")
    finally:
        lib.MPI_Finalize()
    return buffer.value.decode()


def _start_scheduler(host: str, port: int, size: int, env: Mapping[str, str]) -> subprocess.Popen:
    child = {**env, **cluster_variables("MS_SCHED", host, port, size), "GLOG_v": env.get("GLOG_v", "3")}
    child.pop("MS_NODE_ID", None)
    return subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid())], env=child,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)


def cluster_variables(role: str, host: str, port: int, size: int, rank: int | None = None) -> dict[str, str]:
    """The variables msrun gives a MindSpore process of the cluster (``role`` MS_SCHED or MS_WORKER)."""
    variables = {"MS_ROLE": role, "MS_WORKER_NUM": str(size), "MS_SCHED_HOST": host, "MS_SCHED_PORT": str(port)}
    if rank is not None:
        variables.update(MS_NODE_ID=str(rank), RANK_ID=str(rank))
    return variables


def join_cluster_under_mpirun(rank: int, size: int, env: Mapping[str, str]) -> dict[str, str]:
    """The MindSpore cluster variables of ``rank`` of ``size`` (Open MPI's world, as :func:`~.distributed.mpi_world`
    reads it from the launch environment ``env``); rank 0 first starts the scheduler. The caller puts them into the
    process's environment before ``mindspore.communication.init()``; every rank must call it (it is a collective).
    """
    preset = env.get("MS_SCHED_HOST") and env.get("MS_SCHED_PORT", "").isdigit()
    host, port = choose_scheduler_address(env) if rank == 0 or preset else ("", 0)
    if not preset:
        host, _, shown_port = _broadcast_from_rank0(f"{host}:{port}").rpartition(":")
        port = int(shown_port)
    if rank == 0:
        _start_scheduler(host, port, size, env)
    return cluster_variables("MS_WORKER", host, port, size, rank)


_SCHEDULER_CODE = (
    "import mindspore as ms\n"
    "from mindspore.communication import init\n"
    "ms.set_context(device_target='CPU')\n"
    "init()\n"  # serves the workers; returns when every one of them has left
)


def _scheduler_main(parent_pid: int) -> int:
    """Run MindSpore's scheduler as a child and watch rank 0 (this process's parent).

    A watchdog thread inside the scheduler would never run: MindSpore's ``init()`` holds the GIL while it serves.
    """
    scheduler = subprocess.Popen([sys.executable, "-c", _SCHEDULER_CODE], stdin=subprocess.DEVNULL)
    deadline = None
    while scheduler.poll() is None:
        if deadline is None and os.getppid() != parent_pid:  # rank 0 has ended
            deadline = time.monotonic() + SCHEDULER_GRACE_S
        if deadline is not None and time.monotonic() > deadline:  # the others did not leave: one of them died
            scheduler.kill()
        time.sleep(0.5)
    return scheduler.wait()


if __name__ == "__main__":
    sys.exit(_scheduler_main(int(sys.argv[1])))
