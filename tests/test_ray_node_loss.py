"""Losing a node mid-run, on a fresh two-node cluster of its own (the fixtures of
tests/test_ray_cluster.py): the run resumes on the other node from its last checkpoint.

A cluster of its own, because the node is taken away for good, and because a cluster that
already ran other tests' runs keeps their idle workers, which made the timing of the retry
differ from run to run."""
from __future__ import annotations

import psutil
import pytest

from ae.training.snapshot import JobState
from tests.test_ray_cluster import LONG, LONGER, cache, manager, nodes, short, wait_running_where  # noqa: F401
from tests.test_training import wait_for, wait_until_done


def test_killing_the_node_of_a_job_resumes_it_from_its_checkpoint_on_the_other_node(nodes, manager):  # noqa: F811
    cluster, head, worker = nodes
    jobs = [manager.request(LONG.with_changes(seed=35)), manager.request(LONGER)]  # not trained before in this store
    running = {job.key: wait_running_where(job) for job in jobs}
    where = {key: snapshot.where for key, snapshot in running.items()}
    assert set(where.values()) == {short(head), short(worker)}, where  # one CPU a node: one job on each
    doomed = next(job for job in jobs if running[job.key].where == short(worker))
    survivor = next(job for job in jobs if job is not doomed)
    before = wait_for(doomed, lambda s: s.history.epochs_done >= 3, "three epochs", timeout=180)

    # The node dies as a machine does: its raylet and every process under it (a removed node's
    # workers would otherwise train on for a while; the service abandons such a try anyway).
    on_node = psutil.Process(worker.all_processes["raylet"][0].process.pid).children(recursive=True)
    cluster.remove_node(worker, allow_graceful=False)
    for process in on_node:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    survivor.stop()  # frees the head's one CPU for the retried run
    assert wait_until_done(survivor, timeout=90).state is JobState.STOPPED

    resumed = wait_for(doomed, lambda s: s.where == short(head) and s.history.epoch_ends, "resuming on the head",
                       timeout=240)
    assert "resumed from its checkpoint at epoch" in (resumed.warning or ""), resumed.warning
    assert resumed.history.epoch_ends[0] == pytest.approx(1.0)  # the history continues, not restarts
    assert resumed.history.epochs_done >= before.history.epochs_done - 1  # at most the epoch in flight lost
    doomed.stop()
    final = wait_until_done(doomed, timeout=90)
    assert final.state is JobState.STOPPED and final.has_model, final.error
