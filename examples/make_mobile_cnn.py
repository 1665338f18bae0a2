"""Train examples/mobile_cnn.py's model with Keras 3, as a user would, and save it as
examples/mobile_cnn_pretrained.keras: a model trained elsewhere, which fmnist takes as it is.

    python examples/make_mobile_cnn.py
    fmnist-bench --model examples/mobile_cnn_pretrained.keras
"""
import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.mobile_cnn import RECIPE, mobile_cnn  # noqa: E402
from fmnist import data  # noqa: E402  (the Debian package's Fashion-MNIST files)

OUT = Path(__file__).with_name("mobile_cnn_pretrained.keras")


def main():
    keras.utils.set_random_seed(0)
    ds = data.load()
    x, y = data.normalise(ds.train_images)[..., None], ds.train_labels
    model = mobile_cnn()
    steps = RECIPE.epochs * -(-len(x) // RECIPE.batch_size)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(RECIPE.learning_rate, steps)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=RECIPE.batch_size, epochs=RECIPE.epochs, verbose=2)
    _, accuracy = model.evaluate(data.normalise(ds.test_images)[..., None], ds.test_labels, verbose=0)
    tmp = OUT.with_suffix(".tmp.keras")
    model.save(tmp)
    tmp.replace(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, Keras {keras.__version__}): test accuracy {accuracy:.4f}")
    return 0 if np.isfinite(accuracy) else 1


if __name__ == "__main__":
    sys.exit(main())
