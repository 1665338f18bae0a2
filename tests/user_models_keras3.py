"""Keras 3 model files for tests/test_user_models.py, saved as a user saves them: `import keras` in a
process that never imports fmnist, so no legacy switch is set. Run as a script: OUT_DIR MARKER."""
import sys
from pathlib import Path

import keras
import numpy as np
from keras import layers


def good(out: Path) -> None:
    """A MobileNet-ish net in NHWC returning logits, trained for a moment on the real images the
    test saved beside it (train.npz); its answers on test.npy are saved to compare with fmnist's."""
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Add()([x, layers.SeparableConv2D(8, 3, padding="same")(x)])
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(10)(x), name="k3_user")
    images, labels = np.load(out / "train.npz").values()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images[..., None], labels, epochs=2, batch_size=64, verbose=0)
    model.save(out / "k3_user.keras")
    logits = model.predict(np.load(out / "test.npy")[..., None], verbose=0)  # what Keras 3 itself answers
    np.save(out / "k3_user_probabilities.npy", keras.ops.convert_to_numpy(keras.ops.softmax(logits)))


def bad(out: Path, marker: Path) -> None:
    """One file per way a model can miss the contract."""
    flat = keras.Input((28, 28))
    keras.Model(flat, layers.Dense(10)(layers.Flatten()(flat))).save(out / "no_softmax_ok.keras")
    wide = keras.Input((32, 32, 1))
    keras.Model(wide, layers.Dense(10)(layers.Flatten()(wide))).save(out / "wrong_shape.keras")
    keras.Model(flat, layers.Dense(5, activation="softmax")(layers.Flatten()(flat))).save(out / "five_outputs.keras")
    a, b = keras.Input((28, 28)), keras.Input((28, 28))
    joined = layers.Add()([layers.Flatten()(a), layers.Flatten()(b)])
    keras.Model([a, b], layers.Dense(10)(joined)).save(out / "two_inputs.keras")
    path = str(marker)
    code = layers.Lambda(lambda x: (open(path, "w").write("the Lambda ran"), x)[1], name="writes_a_marker")
    keras.Model(flat, layers.Dense(10)(layers.Flatten()(code(flat)))).save(out / "lambda.keras")
    marker.unlink()  # building the model ran the Lambda once; loading it must not run it again
    (out / "text.keras").write_text("not a model, only named like one\n")


if __name__ == "__main__":
    out_dir, marker_path = Path(sys.argv[1]), Path(sys.argv[2])
    assert "tf_keras" not in sys.modules and keras.__version__.startswith("3"), keras.__version__
    good(out_dir)
    bad(out_dir, marker_path)
