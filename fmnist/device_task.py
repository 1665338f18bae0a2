"""What a device worker runs: a benchmark bundle, with the device's own Python, as `python3
bundle.pyz` would be run by hand. Standard library only: the client sends this module's code with
the job (cloudpickle by value), so a device needs numpy, its runtimes and distributed, never
fmnist-edge itself nor TensorFlow."""
import json
import os
import subprocess
import sys
import tempfile


def run_bundle(bundle: bytes, label: str, options: list) -> dict:
    """The runner's result (the JSON it writes) for this bundle, measured on this machine."""
    with tempfile.TemporaryDirectory(prefix="fmnist-device-") as where:
        archive, out = os.path.join(where, "bundle.pyz"), os.path.join(where, "result.json")
        with open(archive, "wb") as f:
            f.write(bundle)
        done = subprocess.run([sys.executable, archive, "--out", out, "--label", label, "--quiet", *options],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"the bundle runner on {label} exited {done.returncode}: {last}")
        with open(out) as f:
            return json.load(f)
