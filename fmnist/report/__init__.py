"""results/, in three layers: `analysis` (pure functions over rows: best rows, Pareto front, targets
and verdicts, summaries), `pages` and `topics` (one render function per page: tabulate,
matplotlib), and `publish` (the whole folder written aside and swapped in at once). The report
reads the run's document only: it never runs a model, and never reads exports/."""
from fmnist.report.publish import DEVICES_DIR, device_results, publish_benchmark, publish_training

__all__ = ["DEVICES_DIR", "device_results", "publish_benchmark", "publish_training"]
