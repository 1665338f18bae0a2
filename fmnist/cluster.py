"""The engine every job of the pipeline runs on: a Dask cluster (distributed), not a pool of our own.

By default a LocalCluster on this machine: one single-threaded worker process per core, each
importing TensorFlow once and taking job after job. With an address, a cluster the user runs:
workers that have the project installed offer the resource `fmnist` (they train and export), and
edge devices join as workers offering `device-<label>` (they measure a bundle, with no TensorFlow).

The cluster's protocol deserializes what it is sent: only a trusted cluster may be used, and a
non-loopback one only over TLS unless the user says the network is trusted (`--insecure-cluster`).
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fmnist.errors import FmnistError, one_line

TRAINING = "fmnist"         # a worker with the project installed: trains, exports, measures on its machine
DEVICE_PREFIX = "device-"   # a device worker: `dask worker ADDRESS --resources "device-pi5=1"`
LEFT_AFTER_SECONDS = 20.0   # a resource no worker offers for this long has left (a nanny restarts a worker in ~5 s)


class ClusterError(FmnistError):
    """A cluster that cannot be used (unreachable, insecure, a device not present): one line, exit 1."""


def _loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (OSError, ValueError):
        return False


def check_address(address: str, insecure: bool = False) -> str:
    """The address if it may be used: TLS, or a loopback address, or the user said the network is trusted."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname:
        raise ClusterError(f"{address}: not a cluster address (tcp://HOST:PORT or tls://HOST:PORT)")
    if parts.scheme == "tcp" and not insecure and not _loopback(parts.hostname):
        raise ClusterError(f"{address}: refusing a cluster beyond this machine without TLS (its protocol runs what it "
                           f"is sent); use tls:// with distributed's security settings (docs/usage.md: 'Run on several "
                           f"machines'), or pass --insecure-cluster on a network you trust")
    return f"{parts.scheme}://{parts.netloc}"


@contextlib.contextmanager
def connect(address: str | None = None, *, insecure: bool = False, workers: int | None = None,
            timeout: float = 10.0):
    """A Client of the cluster at `address`, or of a LocalCluster started (and closed) here. The local
    cluster speaks TLS with mutual authentication on credentials made for this run alone
    (`Security.temporary()`), on loopback, with no HTTP endpoint: Dask's protocol runs whatever code it
    is sent, so another local user (or process without the credentials) must not be able to connect."""
    import dask
    from distributed import Client, LocalCluster
    from distributed.security import Security
    if address is None:
        # a Ctrl-C stops the workers mid-job, and multiprocessing's tracker would then warn of their semaphores
        os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
        # workers may start processes of their own (a runtime measured in a process of its own)
        # ... and train as a process of the pool before them did: without the nanny's eager malloc trim
        # (MALLOC_TRIM_THRESHOLD_=65536 returns freed memory to the OS at every step's tensors)
        environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
                   if k != "MALLOC_TRIM_THRESHOLD_"}
        with dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.work-stealing": False,
                              "distributed.nanny.pre-spawn-environ": environ,
                              # Dask always listens for HTTP: on loopback, with nothing behind it
                              "distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}):
            security = Security.temporary()
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                   resources={TRAINING: 1}, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR if os.environ.get("FMNIST_VERBOSE") else logging.CRITICAL,
                                   protocol="tls://", host="127.0.0.1", security=security,
                                   scheduler_kwargs={"dashboard": False},
                                   memory_limit=0)  # TensorFlow's arenas are not a leak to pause a worker for
            client = Client(cluster, security=security)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    address = check_address(address, insecure)
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the cluster at {address}: {one_line(e, 200)}") \
            from None
    try:
        yield client
    finally:
        client.close()


class OnDemand:
    """A LocalCluster's client, started at its first use: a run with nothing to send (every job's
    verdict and every row reused) starts no cluster. `on_start(client)` runs once it is up."""

    def __init__(self, stack: contextlib.ExitStack, on_start=lambda client: None):
        self._stack, self._on_start, self._client = stack, on_start, None

    def __getattr__(self, name):
        if self._client is None:
            self._client = self._stack.enter_context(connect(None))
            self._on_start(self._client)
        return getattr(self._client, name)


def offered(client) -> dict[str, int]:
    """How many workers offer each resource now."""
    counts: dict[str, int] = {}
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        for resource in worker.get("resources", {}):
            counts[resource] = counts.get(resource, 0) + 1
    return counts


def offered_within(client, resource: str, seconds: float) -> bool:
    """Whether some worker offers `resource` now or within `seconds` (a restarted worker)."""
    deadline = time.monotonic() + seconds
    while not offered(client).get(resource):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def device_labels(client) -> list[str]:
    """The labels of the device workers present."""
    return sorted(r[len(DEVICE_PREFIX):] for r in offered(client) if r.startswith(DEVICE_PREFIX))


class WorkerLeft(Exception):
    """No worker offers what a task needs any more."""


@dataclass
class Task:
    """A submitted job: what it is (for progress and error rows) and the resource it needs."""
    what: str
    resource: str
    payload: dict = field(default_factory=dict)
    handled: bool = False


def drive(client, tasks: dict, on_done, poll: float = 0.2, left_after: float = LEFT_AFTER_SECONDS) -> None:
    """Hand each task to `on_done(future, task, error)` as it finishes (error None, the job's
    exception, or WorkerLeft); `tasks` ({future: Task}) may grow while this runs (on_done submits
    follow-up jobs). A task whose resource no worker has offered for `left_after` seconds is
    cancelled and handed over with WorkerLeft."""
    missing_since: dict[str, float] = {}
    checked = 0.0
    while any(not t.handled for t in tasks.values()):
        for future, task in list(tasks.items()):
            if not task.handled and future.done():
                task.handled = True
                on_done(future, task, None if future.status == "finished" else
                        future.exception() if future.status == "error" else WorkerLeft(f"the job was {future.status}"))
        now = time.monotonic()
        if now - checked > 1.0:
            checked = now
            present = offered(client)
            for resource in {t.resource for t in tasks.values() if not t.handled}:
                if present.get(resource):
                    missing_since.pop(resource, None)
                    continue
                since = missing_since.setdefault(resource, now)
                if now - since >= left_after:
                    for future, task in list(tasks.items()):
                        if task.resource == resource and not task.handled:
                            future.cancel()
                            task.handled = True
                            on_done(future, task, WorkerLeft(f"no worker offers {resource} (worker left)"))
        time.sleep(poll)
