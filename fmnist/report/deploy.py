"""What to deploy on each target the results cover: every microcontroller board (TFLM rows that fit its
flash and RAM), every Ethos-U NPU board (Vela's estimates that fit it), every merged device, and this
machine per edge runtime. Per target, two picks from the sound rows that fit: the most accurate, and
the fastest within MAX_ACCURACY_DROP of it. Pure functions over the records and fmnist.boards; the
README renders what `answers` returns, and tests check it against a brute-force selection.

A choice reads only rows whose runtime executes the file at the file's own precision (`analysis.sound`):
a 16x8 file OpenVINO ran in float32 is a float execution, and its accuracy not the integer model's.
"""
from __future__ import annotations

from dataclasses import dataclass

from fmnist.boards import BOARDS, NPU_BOARDS
from fmnist.environment import HOST_LABEL
from fmnist.metrics import MAX_ACCURACY_DROP
from fmnist.report import analysis as a
from fmnist.runtimes import get_runtime

USER = "user"   # the source of a model the user brought: it gets its own line where it wins


def machine(r: dict) -> str:
    return r.get("machine", HOST_LABEL)


@dataclass(frozen=True)
class Candidate:
    """A row a target could deploy: its record (what the answer links to), its accuracy (an
    estimate's is the measured accuracy of the same file), and what "fastest" minimises."""
    row: dict
    accuracy: float
    speed: tuple


@dataclass(frozen=True)
class DeployTarget:
    name: str
    kind: str          # board, npu, device or runtime: how its speed and memory read
    about: str         # one line: the memory it offers, or the runtime and machine
    candidates: tuple  # Candidate: sound, own-precision rows that fit


@dataclass(frozen=True)
class Answer:
    target: DeployTarget
    model: str | None        # None: the registry's models; a user model's name for its own line
    accurate: Candidate | None
    fastest: Candidate | None


def _sound(r: dict) -> bool:
    """Not flagged, within MAX_ACCURACY_DROP of its Keras model, and run at the file's own precision."""
    return r["status"] == "ok" and a.sound(r, r["source_accuracy"])


def _measured(r: dict) -> Candidate:
    return Candidate(r, r["accuracy"], (r["latency_us"]["p50"],))


def size(n: float) -> str:
    """Bytes as a person reads them: '256 KiB', '13.5 MiB', '1.2 KiB'."""
    if n >= 1024 ** 2:
        return f"{n / 1024 ** 2:,.1f} MiB".replace(".0 MiB", " MiB")
    return f"{n / 1024:,.1f} KiB" if n < 10 * 1024 else f"{n / 1024:,.0f} KiB"


def board_targets(records: list[dict]) -> list[DeployTarget]:
    """Each board, if any TFLM row was measured: its TFLM rows whose flash and smallest arena fit
    (Board.fits). No MCU latency is measured (TFLM's host p50 is not one), so the fastest is the
    fewest MACs."""
    tflm = [r for r in records if machine(r) == HOST_LABEL and r["status"] == "ok"
            and get_runtime(r["runtime"]).microcontroller and "arena_bytes_min" in (r.get(r["runtime"]) or {})]
    if not tflm:
        return []
    good = [r for r in tflm if _sound(r)]
    return [DeployTarget(b.name, "board", f"{size(b.flash_bytes)} flash, {size(b.ram_bytes)} RAM",
                         tuple(Candidate(r, r["accuracy"], (r["macs"],)) for r in good
                               if b.fits(r[r["runtime"]]["flash_bytes"], r[r["runtime"]]["arena_bytes_min"])))
            for b in BOARDS]


def npu_weights(r: dict) -> int:
    return r["ethos_u"]["flash_bytes"] + r["ethos_u"]["dram_bytes"]


def npu_targets(records: list[dict]) -> list[DeployTarget]:
    """Each NPU board with Vela estimates of its accelerator: the estimates that fit it
    (NPUBoard.fits), each with the accuracy of the same file measured on a microcontroller runtime
    (TFLM's integer reference kernels: the arithmetic the NPU runs), sound files only."""
    measured = {r["artifact_sha256"]: r for r in records if machine(r) == HOST_LABEL and r["status"] == "ok"
                and get_runtime(r["runtime"]).microcontroller and _sound(r)}
    found = []
    for b in NPU_BOARDS:
        estimates = [r for r in records if machine(r) == HOST_LABEL and r["status"] == "estimated"
                     and r["runtime"] == b.accelerator]
        if estimates:
            found.append(DeployTarget(b.name, "npu", f"{b.accelerator}, {size(b.sram_bytes)} SRAM, "
                                      f"{size(b.weights_bytes)} for weights",
                                      tuple(Candidate(r, measured[r["artifact_sha256"]]["accuracy"],
                                                      (r["ethos_u"]["inference_us"],))
                                            for r in estimates if r["artifact_sha256"] in measured
                                            and b.fits(r["ethos_u"]["sram_bytes"], npu_weights(r)))))
    return found


def runtime_targets(records: list[dict]) -> list[DeployTarget]:
    """This machine, once per edge runtime it measured (LiteRT, ONNX Runtime, OpenVINO, ...)."""
    host = [r for r in records if machine(r) == HOST_LABEL and r["status"] == "ok" and a.is_edge(r)]
    return [DeployTarget(f"this machine, {runtime}", "runtime", "",
                         tuple(_measured(r) for r in host if r["runtime"] == runtime and _sound(r)))
            for runtime in sorted({r["runtime"] for r in host})]


def device_targets(records: list[dict]) -> list[DeployTarget]:
    """Each merged device (by its machine label), over every edge runtime it ran."""
    rows = [r for r in records if machine(r) != HOST_LABEL and r["status"] == "ok" and a.is_edge(r)]
    return [DeployTarget(f"device {label}", "device", ", ".join(sorted({r["runtime"] for r in rows
                                                                          if machine(r) == label})),
                         tuple(_measured(r) for r in rows if machine(r) == label and _sound(r)))
            for label in sorted({machine(r) for r in rows})]


def targets(records: list[dict]) -> list[DeployTarget]:
    return [*board_targets(records), *npu_targets(records), *runtime_targets(records), *device_targets(records)]


def choose(candidates) -> tuple[Candidate | None, Candidate | None]:
    """(the most accurate, the fastest within MAX_ACCURACY_DROP of it); ties go to the faster, then
    the more accurate."""
    accurate = min(candidates, key=lambda c: (-c.accuracy, c.speed), default=None)
    if accurate is None:
        return None, None
    near = [c for c in candidates if c.accuracy >= accurate.accuracy - MAX_ACCURACY_DROP]
    return accurate, min(near, key=lambda c: (c.speed, -c.accuracy))


def answers(records: list[dict]) -> list[Answer]:
    """Per target, the registry's models' answer; then each user model whose most accurate row there
    is at least as accurate as that answer, on a line of its own."""
    found = []
    for target in targets(records):
        zoo = [c for c in target.candidates if c.row.get("source") != USER]
        best = choose(zoo)
        found.append(Answer(target, None, *best))
        for model in sorted({c.row["model"] for c in target.candidates if c.row.get("source") == USER}):
            mine = choose([c for c in target.candidates if c.row["model"] == model])
            if best[0] is None or mine[0].accuracy >= best[0].accuracy:
                found.append(Answer(target, model, *mine))
    return found


def other_precision(records: list[dict]) -> list[dict]:
    """The ok rows no choice reads: the runtime ran the file at another precision than its own."""
    return [r for r in records if r["status"] == "ok" and not a.own_precision(r)]
