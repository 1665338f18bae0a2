"""The pipeline's jobs on a Dask cluster (fmnist.cluster), longest first:

1. each model's training and export (with its variants), on a worker that has the project;
2. as soon as a model is exported, its measuring on the runtimes that hold one core (TFLM, the
   Vela estimates), on this machine's workers, while other models still train;
3. once every model is exported: the runtimes that use the whole machine, one at a time, and the
   devices' bundles on their device workers, at the same time (another machine each).

Only this machine writes exports/ and results/: a training job's changed folders come back whole.
A job whose worker died is retried by Dask (on a new worker) up to its limit, then is an error row;
a device that leaves gives "unavailable" rows; every finished row is kept.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path

from fmnist import environment, storage, tasks
from fmnist.errors import one_line
from fmnist.atomic import write_json
from fmnist.cluster import (DEVICE_PREFIX, LEFT_AFTER_SECONDS, TRAINING, ClusterError, Task, WorkerLeft, drive,
                            offered, offered_within)
from fmnist.config import RunConfig
from fmnist.harness import reused_row, run_runtime
from fmnist.jobs import collect_jobs
from fmnist.plan import (DEVICE_FORMATS, RESCATTER_TRIES, SECONDS_PER_MEASURED_ROW, VERDICTS_DIR, Outcome, Plan,
                         estimated_seconds, family_folders, package_digest, whole_machine)
from fmnist.rows import row
from fmnist.runtimes import get_runtime
from fmnist.variants import BASE

UNFINISHED = "did not finish"  # an error row of an infrastructure failure: the run exits non-zero


def _lost_rows(model: str, what: str, why: str, runtimes: list[str], formats: list[str]) -> list[dict]:
    """A model whose job never finished: an error row on each selected runtime that would have
    measured it (one, without a runtime, when none was selected: an export-only run)."""
    from fmnist.models import get_spec
    error = f"{what} {UNFINISHED}: {why}"
    found = [(r, next((f for f in get_runtime(r).formats if f in formats), None)) for r in runtimes]
    return [row(model=model, source=get_spec(model).source, variant="base", format=fmt, runtime=r,
                device=get_runtime(r).device, status="error", error=error) for r, fmt in found if fmt] or \
        [row(model=model, variant="base", status="error", error=error)]


class Pipeline:
    """One run's jobs: submitted, followed and collected on `client` (training) and `local` (this
    machine's workers: host measuring, user models read from a file here)."""

    def __init__(self, client, local, plan: Plan, ds, on_progress=None, on_rows=None):
        from fmnist.models import get_spec, user_specs
        self.client, self.local, self.plan, self.ds = client, local, plan, ds
        self.on_progress, self.on_rows = on_progress or (lambda text, done: None), on_rows or (lambda outcome: None)
        self.outcome, self.tasks = Outcome(), {}
        self.specs = user_specs()
        self.here = {n for n in plan.names if (get_spec(n).origin or {}).get("kind") in ("keras-file", "onnx-file")}
        self.families_left = len(plan.names)
        self._whole_machine_started = False
        self.whole_machine = [r for r in plan.runtimes if whole_machine(r)]
        self._scattered, self._scattered_before = {}, False

    def _data(self, client):
        """The training set, sent to a cluster's workers once (not with every job)."""
        if id(client) not in self._scattered:
            if not self._scattered_before and not offered(client).get(TRAINING):  # else Dask: "No valid workers"
                raise ClusterError(f"no worker in the cluster trains: start one with dask worker ADDRESS "
                                   f"--resources \"{TRAINING}=1\" (docs/usage.md: 'Run on several machines')")
            self._scattered[id(client)] = client.scatter(self.ds, broadcast=True, hash=False)
            self._scattered_before = True
        return self._scattered[id(client)]

    def run(self) -> Outcome:
        for name in sorted(self.plan.names, key=lambda n: -estimated_seconds(n, self.plan)):
            self._submit_family(name)
        try:
            drive(self.client, self.tasks, self._done)
        except BaseException:  # Ctrl-C, or a bug: nothing keeps running on the cluster
            for future in self.tasks:
                future.cancel()
            raise
        return self.outcome

    def _submit(self, client, what: str, resource: str, priority: float, function, *args, **payload):
        future = client.submit(function, *args, resources={resource: 1}, priority=priority, pure=False,
                               key=f"{what.replace(' ', '-')}-{time.monotonic_ns()}")
        self.tasks[future] = Task(what, resource, payload)

    def _submit_family(self, name: str, tries: int = 0) -> None:
        p = self.plan
        client = self.local if name in self.here else self.client
        shipped = tasks.folder_files(p.exports, family_folders(name, p.variants))
        verdict = None if p.config.force else _read_json(self._verdict_path(name))
        if verdict and verdict.get("key") == self._family_key(shipped):  # nothing it would do: its verdict stands
            self.outcome.jobs.append({"job": f"train+export {name}", "status": "reused"})
            return self._family_finished(name, verdict)
        estimate = estimated_seconds(name, p)
        self._submit(client, f"train+export {name}", TRAINING, estimate, tasks.train_and_export,
                     name, p.formats, p.variants, p.config, self.specs, shipped, self._data(client),
                     kind="family", name=name, units=estimate, tries=tries)

    def _verdict_path(self, name: str) -> Path:
        return self.plan.exports / VERDICTS_DIR / f"{name}.json"

    def _family_key(self, shipped: dict) -> str:
        """A model's training and export job, as content: its folders' files (measurements aside, which
        it never reads), what it is asked, the library versions and the package's code."""
        p = self.plan
        files = {folder: {n: hashlib.sha256(d).hexdigest() for n, d in found.items()
                          if not n.endswith((".measured.json", ".top1.npy"))} for folder, found in shipped.items()}
        return storage.cache_key({"files": files, "formats": [(f.name, f.settings()) for f in p.formats],
                                  "variants": [v.as_dict() for v in p.variants], "config": dataclasses.asdict(p.config),
                                  "specs": [repr(s) for s in self.specs], "versions": environment.versions(),
                                  "code": package_digest()})

    def _folders(self, name: str) -> list[Path]:
        """The model folders there are to measure (a user model's variant may be 'not made')."""
        folders = [storage.model_dir(self.plan.exports, name, v.name) for v in [BASE, *self.plan.variants]]
        return [f for f in folders if f.name == name or (f / storage.RECORD_FILE).is_file()]

    def _submit_measuring(self, names: list[str], runtimes: list[str], priority: float) -> None:
        jobs = collect_jobs([f for n in names for f in self._folders(n)], self.plan.measured_formats, runtimes)
        for runtime in runtimes:
            if jobs.get(runtime) and get_runtime(runtime).unavailable():  # one row saying why, made here: no job
                first = jobs[runtime][0]
                self.outcome.rows[(runtime, first.folder, first.format)], = run_runtime(
                    runtime, [], self.plan.data_dir, self.plan.settings, progress=False)
                continue
            for job in jobs.get(runtime, []):  # a row measured before on this very file is read here, not measured
                reused = reused_row(runtime, job, self.plan.settings)
                if reused is not None:
                    self.outcome.rows[(runtime, job.folder, job.format)] = reused
            todo = [j for j in jobs.get(runtime, []) if (runtime, j.folder, j.format) not in self.outcome.rows]
            if whole_machine(runtime):
                units = {"all" if len(names) > 1 else names[0]: todo} if todo else {}
            else:  # one job per source model (a runtime's twins share a process), the most MACs first
                units = {}
                for job in sorted(todo, key=lambda j: -(j.meta.get("macs") or 0)):
                    units.setdefault(Path(job.reference).name, []).append(job)
            for what, unit in units.items():
                self._submit(self.local, f"measure {runtime} {what}", TRAINING,
                             priority + (unit[0].meta.get("macs") or 0) / 1e9, tasks.measure, runtime, unit,
                             self.plan.data_dir, self.plan.settings, None if whole_machine(runtime) else 1,
                             tasks.users_environment(), kind="measure", runtime=runtime, jobs=unit)

    def _done(self, future, task: Task, error) -> None:
        kind = task.payload["kind"]
        self.outcome.jobs.append({"job": task.what, "status": "ok" if error is None else "error",
                                  **({"worker": future.result()["worker"], "seconds": future.result()["seconds"]}
                                     if error is None and kind != "device" else {}),
                                  **({"error": _reason(error)} if error is not None else {})})
        getattr(self, f"_{kind}_done")(future, task, error)

    def _family_done(self, future, task: Task, error) -> None:
        name = task.payload["name"]
        client = self.local if name in self.here else self.client
        data = self._scattered.get(id(client))
        if future.status == "cancelled" and data is not None and data.status != "finished" and \
                task.payload["tries"] < RESCATTER_TRIES:  # the worker that died held the only copy of the data
            del self._scattered[id(client)]
            if offered_within(client, TRAINING, LEFT_AFTER_SECONDS):  # a nanny restarts its worker in seconds
                self._submit_family(name, task.payload["tries"] + 1)
                return
            error = WorkerLeft(f"no worker offers {TRAINING} (worker left)")
        if error is None:
            result = future.result()
            tasks.write_folders(self.plan.exports, result["changed"])
            if not any("fmnist error" in f["error"] for f in result["failures"]):  # a bug of ours is never kept
                shipped = tasks.folder_files(self.plan.exports, family_folders(name, self.plan.variants))
                write_json(self._verdict_path(name), {"key": self._family_key(shipped),
                                                      **{k: result[k] for k in ("manifests", "failures", "skipped")}})
            return self._family_finished(name, result, task.payload["units"])
        if not isinstance(error, (WorkerLeft, _killed_worker())):
            raise error
        self.outcome.lost.extend(_lost_rows(name, f"training and export of {name}", _reason(error),
                                            self.plan.runtimes, self.plan.measured_formats))
        self.on_progress(f"{name} lost", task.payload["units"])
        self.families_left -= 1
        self._maybe_whole_machine()

    def _family_finished(self, name: str, result: dict, units: float = 0.0) -> None:
        """A model's artifacts are in exports/: its one-core measuring starts now."""
        for key in ("manifests", "failures", "skipped"):
            getattr(self.outcome, key).extend(result[key])
        if self.plan.runtimes:
            self._submit_measuring([name], [r for r in self.plan.runtimes if not whole_machine(r)], 0)
        self.on_progress(f"{name} exported", units)
        self.families_left -= 1
        self._maybe_whole_machine()

    def _maybe_whole_machine(self) -> None:
        """Once every model is exported and nothing else measures here, the whole-machine phase."""
        one_core = [t for t in self.tasks.values() if t.payload["kind"] == "measure" and not t.handled
                    and not whole_machine(t.payload["runtime"])]
        if self.families_left == 0 and not one_core and not self._whole_machine_started:
            self._whole_machine_started = True
            self._start_whole_machine()

    def _start_whole_machine(self) -> None:
        names = [n for n in self.plan.names if not any(r["model"] == n for r in self.outcome.lost)]
        self._queue = list(self.whole_machine)
        self._names = names
        self._next_whole_machine()
        for label in self.plan.devices:
            self._submit_device(label, names)

    def _next_whole_machine(self) -> None:
        """The whole-machine runtimes one after another, each once nothing else measures here."""
        while self._queue:
            runtime = self._queue.pop(0)
            before = len(self.tasks)
            self._submit_measuring(self._names, [runtime], -1)
            if len(self.tasks) > before:
                return

    def _measure_done(self, future, task: Task, error) -> None:
        runtime, jobs = task.payload["runtime"], task.payload["jobs"]
        if error is None:
            rows = future.result()["rows"]
        else:
            runtime_ = get_runtime(runtime)
            rows = [row(**job.meta, format=job.format, runtime=runtime, device=runtime_.device,
                        artifact_sha256=job.sha256, status="error", error=f"measuring {UNFINISHED}: {_reason(error)}")
                    for job in jobs]
        self.outcome.rows.update({(runtime, job.folder, job.format): r for job, r in zip(jobs, rows)})
        self.on_progress(task.what, len(jobs) * SECONDS_PER_MEASURED_ROW)
        self.on_rows(self.outcome)
        if whole_machine(runtime):
            self._next_whole_machine()
        else:
            self._maybe_whole_machine()

    def _submit_device(self, label: str, names: list[str]) -> None:
        import cloudpickle

        from fmnist import bundle, data, device_task
        cloudpickle.register_pickle_by_value(device_task)  # a device has no fmnist-edge installed
        folders = [storage.model_dir(self.plan.exports, n) for n in names]
        formats = [f for f in DEVICE_FORMATS if f in self.plan.measured_formats]
        images, labels = data.load_test_set(self.plan.data_dir)
        with tempfile.TemporaryDirectory(prefix="fmnist-bundle-") as where:
            out = Path(where) / f"{label}.pyz"
            bundle.pack(folders, formats, out, images, labels, names, self.plan.exports)
            packed = out.read_bytes()
        options = [o for r in self.plan.runtimes if set(get_runtime(r).formats) & set(formats) for o in ("--runtime", r)]
        self._submit(self.client, f"device {label}", f"{DEVICE_PREFIX}{label}", 0, device_task.run_bundle,
                     packed, label, options, kind="device", label=label, formats=formats)

    def _device_done(self, future, task: Task, error) -> None:
        from fmnist import bundle
        label = task.payload["label"]
        if error is None:
            with tempfile.TemporaryDirectory(prefix="fmnist-device-") as where:  # checked as `merge` checks a file
                path = Path(where) / f"{label}.json"
                path.write_text(json.dumps(future.result()))
                result = bundle.read_device_result(path, self.plan.exports)
        else:
            result = unavailable_device(label, task.payload["formats"], self.plan.runtimes, _reason(error))
        self.outcome.devices.append(result)
        self.on_progress(task.what, 0)


def unavailable_device(label: str, formats: list[str], runtimes: list[str], why: str) -> dict:
    """A device result whose rows say the device's measuring never came back, and why."""
    from fmnist.bundle import records_digest
    records = [row(runtime=r, device=get_runtime(r).device, status="unavailable", machine=label,
                   error=f"unavailable: {why}", formats=[f for f in get_runtime(r).formats if f in formats])
               for r in runtimes if set(get_runtime(r).formats) & set(formats)]
    return {"schema": 1, "kind": "fmnist-device-run", "bundle": None,
            "machine": {**{k: None for k in environment.machine(label)}, "label": label},
            "environment": None, "settings": None, "tensorflow_imported": None,
            "records": records, "records_sha256": records_digest(records)}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class ClusterJobError(storage.StorageError):
    """A job the cluster could not finish (its worker died on each try, or left): one line, exit 1."""


def _killed_worker():
    from distributed import KilledWorker
    return KilledWorker


def _reason(error: BaseException) -> str:
    if isinstance(error, WorkerLeft):
        return f"unavailable: worker left ({error})"
    if isinstance(error, _killed_worker()):
        return f"its worker died on each try ({one_line(error, 200)})"
    return one_line(error)


def execute(plan: Plan, ds, *, cluster: str | None = None, insecure: bool = False, progress: bool = True,
            on_rows=None) -> tuple[Outcome, float]:
    """Run the plan's jobs on a LocalCluster, or on the cluster at `cluster` (with this machine's own
    workers measuring the host's rows); returns the outcome and the run's wall seconds. Progress
    shows the stage, the model, and the time left (estimated from the jobs' expected cost)."""
    import contextlib

    from tqdm import tqdm

    from fmnist.cluster import OnDemand, connect, device_labels
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(desc="run", unit="s", disable=not progress,
                                       bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {elapsed}<{remaining} {postfix}"))

        def show_progress(client):  # the workers' progress lines: an epoch, an artifact
            client.subscribe_topic(tasks.PROGRESS_TOPIC, lambda event: bar.set_postfix_str(str(event[1])[:80]))
        local = OnDemand(stack, show_progress)  # started when a job is sent: a warm run may send none
        client = local
        if cluster is not None:
            client = stack.enter_context(connect(cluster, insecure=insecure))  # unreachable: one line, before work
            show_progress(client)
        present = device_labels(client) if cluster is not None else []
        missing = [d for d in plan.devices or () if d not in present]
        if missing:
            raise ClusterError(f"no device worker {', '.join(missing)} in the cluster (present: "
                               f"{', '.join(present) or 'none'}); start one with dask worker ADDRESS --resources "
                               f"\"{DEVICE_PREFIX}{missing[0]}=1\"")
        plan = dataclasses.replace(plan, devices=tuple(present if plan.devices is None else plan.devices))
        if plan.devices and not set(DEVICE_FORMATS) & set(plan.measured_formats):
            raise ClusterError(f"devices measure {', '.join(DEVICE_FORMATS)}, and none of them was selected")
        rows = len(plan.names) * (1 + len(plan.variants)) * len(plan.measured_formats) * SECONDS_PER_MEASURED_ROW
        bar.total = round(sum(estimated_seconds(n, plan) for n in plan.names) + (rows if plan.runtimes else 0))

        def on_progress(text, units):
            bar.set_postfix_str(text[:80])
            bar.update(min(round(units), bar.total - bar.n))
        outcome = Pipeline(client, local, plan, ds, on_progress, on_rows).run()
    return outcome, time.perf_counter() - start


def export_all(names: list[str], formats: list, variants: list, exports: Path, ds, config: RunConfig = RunConfig(),
               *, progress: bool = True, cluster: str | None = None, insecure: bool = False):
    """Train what is missing, derive the variants, export every (model, variant) to every format
    that applies to it, on the cluster; returns (manifests, failures, skipped), in the order of `names`."""
    plan = Plan(names, formats, [], [], variants, Path(exports), config)
    outcome, _ = execute(plan, ds, cluster=cluster, insecure=insecure, progress=progress)
    if outcome.lost:
        raise ClusterJobError(outcome.lost[0]["error"])
    order = {n: i for i, n in enumerate(names)}
    return tuple(sorted(items, key=lambda m: order.get(m.get("model"), len(order)))
                 for items in (outcome.manifests, outcome.failures, outcome.skipped))
