"""fmnist-edge: train, export and benchmark small Fashion-MNIST models for edge devices.

The whole project speaks one model API, tf_keras (Keras 2) in TensorFlow's legacy mode:
tensorflow-model-optimization and tf2onnx's Keras path refuse Keras 3 models, and mixing the
two APIs yields two incompatible model classes. The switch only works if it is set before
TensorFlow is first imported, so the package sets it on import, whatever the entry point.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
