"""fmnist-edge: train, export and benchmark small Fashion-MNIST models for edge devices.

The whole project speaks one model API, tf_keras (Keras 2) in TensorFlow's legacy mode:
tensorflow-model-optimization and tf2onnx's Keras path refuse Keras 3 models, and mixing the
two APIs yields two incompatible model classes. The switch only works if it is set before
TensorFlow is first imported, so the package sets it on import, whatever the entry point.

TensorFlow also writes half a dozen lines to stderr while it loads (absl messages printed before
its logging is set up, so no environment variable silences them). Wherever this package is
imported, TensorFlow's import and first device discovery run with stderr muted; a failure still
raises, after stderr is back.
"""
import contextlib
import importlib.abc
import importlib.util
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"


@contextlib.contextmanager
def stderr_muted():
    """Mute file descriptor 2 (C++ libraries' own prints as well as Python's)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def captured_output(call, fds: tuple[int, ...] = (1, 2)) -> tuple[object, str]:
    """(call(), what it printed to the file descriptors `fds`, and to sys.stdout and sys.stderr
    where those are not the descriptors themselves, as under pytest): C++ libraries (TFLM, Vela's
    compiler) print to the descriptors directly, Python code to the streams."""
    import io
    import tempfile
    streams = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    with tempfile.TemporaryFile() as sink:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        try:
            with contextlib.redirect_stdout(streams), contextlib.redirect_stderr(streams):
                result = call()
        finally:
            for fd, copy in zip(fds, saved):
                os.dup2(copy, fd)
                os.close(copy)
        sink.seek(0)
        return result, sink.read().decode(errors="replace") + streams.getvalue()


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps the loader of TensorFlow's spec, so the import (whenever it
    happens: a look-up such as importlib.util.find_spec does not count) runs with stderr muted."""
    looking = False

    def find_spec(self, name, path, target=None):
        if name != "tensorflow" or self.looking:
            return None
        self.looking = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.looking = False
        if spec and spec.loader:
            load = spec.loader.exec_module

            def exec_module(module):
                with stderr_muted():
                    load(module)
                    module.config.list_physical_devices()  # CUDA's probe logs here
                module.get_logger().setLevel("ERROR")  # e.g. retracing notes: ours are deliberate
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
            spec.loader.exec_module = exec_module
        return spec


if "tensorflow" not in sys.modules and os.environ.get("FMNIST_TF_LOGS") != "1":
    sys.meta_path.insert(0, _QuietTensorFlow())
