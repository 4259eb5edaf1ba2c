"""``python -m mindcv_mobilenet.launch``: MindSpore's ``msrun`` with the scheduler started by node 0 only.

msrun (MindSpore 2.10, ``mindspore/parallel/cluster/process_entity/_api.py``) starts the scheduler in every launcher
whose machine owns ``--master_addr``: it decides by address (``is_master = _is_local_ip(master_addr)``), not by
``--node_rank``. On separate machines only machine 0 owns the address and plain msrun is right. When several nodes
share a host (a test, containers on the host network), every launcher starts a scheduler on the same port; the one
that loses the race cannot bind it, exits non-zero, and its launcher fails although its workers trained (they reach
the other scheduler). This launcher takes exactly msrun's options and arguments and leaves the scheduler to the
launcher with ``--node_rank`` 0 (or unset); a launcher without one still waits for its workers and returns their
status. msrun's Ctrl+C handler, which fails on a launcher without a scheduler, is fixed too.

A worker that dies (``kill -9``, out of memory) ends the job at once, named in one line by its rank with how it
ended; msrun itself logs the process id and then waits ~30 s for the scheduler to notice the lost heartbeats.

    python -m mindcv_mobilenet.launch --worker_num=16 --local_worker_num=8 --node_rank=1 \\
        --master_addr=10.0.0.1 --master_port=8118 --join=True train.py -c recipe.yaml
"""

from __future__ import annotations

import signal
import sys
import time

from mindspore.parallel.cluster import run as msrun
from mindspore.parallel.cluster.process_entity import _ProcessManager


def starts_scheduler(owns_master_addr: bool, node_rank: int) -> bool:
    """Whether a launcher runs the scheduler: on the machine of ``--master_addr``, and only as node 0 (-1: unset)."""
    return owns_master_addr and node_rank <= 0


class NodeRankProcessManager(_ProcessManager):
    """msrun's process manager, with the scheduler decided by :func:`starts_scheduler`."""

    def __init__(self, args) -> None:
        super().__init__(args)
        self.is_master = starts_scheduler(self.is_master, self.node_rank)

    def kill_all_processes(self) -> None:
        """Workers, log tails, then the scheduler when this launcher has one (msrun's own assumes it has)."""
        self.kill_worker_processes()
        self.kill_tail_log_processes()
        if self.msn_process is not None and self.msn_process.poll() is None:
            self.msn_process.kill()

    def join_processes(self) -> None:
        """Wait for the workers; the first that fails stops the job (scheduler included) and is named by rank."""
        def on_interrupt(_sig, _frame) -> None:
            self.kill_all_processes()
            sys.exit(130)

        signal.signal(signal.SIGINT, on_interrupt)
        while True:
            failed = [(local, proc) for local, proc in self.proc_rank_map.items() if proc.poll() not in (None, 0)]
            if failed:
                local_rank, proc = failed[0]
                rank, log_name = self._get_node_id_and_log_path(local_rank)
                self.kill_all_processes()
                raise WorkerLost(f"rank {rank if rank is not None else local_rank} {how_it_ended(proc.returncode)}: "
                                 f"the job was stopped (its log: {log_name})")
            if all(proc.poll() == 0 for proc in self.proc_rank_map.values()):
                break
            time.sleep(0.5)
        self.kill_tail_log_processes()
        if self.msn_process is not None and self.msn_process.wait() != 0:
            raise RuntimeError(f"the scheduler exited with status {self.msn_process.returncode} (its log: "
                               f"{self.log_dir}/scheduler.log)")


class WorkerLost(RuntimeError):
    """A worker process ended with an error or a signal."""


def how_it_ended(returncode: int) -> str:
    """'was killed by signal 9 (SIGKILL)' / 'exited with status 1', for a Popen return code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with status {returncode}"


def main() -> int:
    """Parse msrun's command line (``sys.argv``) and run it; a failed job is one line and exit status 1."""
    manager = NodeRankProcessManager(msrun.get_args())
    try:
        manager.run()
    except RuntimeError as err:  # msrun's "Distributed job exited with exception. Please check logs in ..."
        print(f"launch: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
