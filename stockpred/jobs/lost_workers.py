"""Jobs whose worker is gone for good: a host that died leaves them running on nobody.

A worker whose main process dies and is restarted fails what its previous incarnation left
running (`workers.signals`). A host that stops for good never restarts its workers, so their
jobs would look started until the broker redelivers the message, hours later, and a client
waiting on one would wait that long. `fail_jobs_of_silent_workers` fails them as `worker_lost`:
it reads which incarnations have jobs running, asks their nodes to answer (Celery's ping,
passed in), and fails the jobs of the incarnations whose node stays silent when asked twice. A
node that answers keeps its jobs; an incarnation that started after the look is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from stockpred.jobs.errors import ErrorKind, error_record
from stockpred.jobs.records import JobStore, WorkerRun

log = logging.getLogger(__name__)
# The nodes asked, in; the nodes that answered, out.
Ping = Callable[[list[str]], Iterable[str]]


class HostLost(RuntimeError):
    """The worker running a job stopped answering (its host is down or cut off)."""

    kind = ErrorKind.WORKER_LOST


def _silent(nodes: set[str], ping: Ping) -> set[str]:
    """The nodes that answer neither of two pings (a busy moment is not a lost host)."""
    silent = nodes - set(ping(sorted(nodes)))
    if silent:
        silent -= set(ping(sorted(silent)))
    return silent


def fail_jobs_of_silent_workers(store: JobStore, ping: Ping) -> list[str]:
    """Fail the running jobs of incarnations whose node no longer answers; their ids."""
    running = store.running_boots()
    failed: list[str] = []
    for node in sorted(_silent({node for node, boots in running.items() if boots}, ping)):
        for boot in sorted(running[node]):
            reason = HostLost(
                f"worker {node} stopped answering (its host is down or cut off) while running "
                "this job; the job did not finish and will not run again: submit it again"
            )
            lost = store.fail_gone(WorkerRun(node, boot), error_record(reason))
            for job_id in lost:
                log.warning("job %s failed: its worker %s stopped answering", job_id, node)
            failed.extend(lost)
    return failed
