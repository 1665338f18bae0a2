"""Where one training step's time goes, on one core as a worker trains: the input pipeline, the
forward pass, forward and backward, and the whole step as the recipe runs it, beside the ways of
running it that were tried (steps_per_execution 1, XLA, larger batches), in interleaved rounds so
the machine's drift hits every case alike. Prints a markdown table (README, "Training speed").

    python bench/step_profile.py edge_cnn [--rounds 3] [--batches 200]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the one-core dense rate below
import numpy as np  # noqa: E402

import fmnist  # noqa: E402,F401  (tf_keras before TensorFlow)
from fmnist import cost, data, models, train  # noqa: E402
from fmnist.layers import count_macs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=models.list_models())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=200, help="batches of 32 images a case runs each round")
    args = parser.parse_args()
    import tensorflow as tf
    import tf_keras as keras
    from tabulate import tabulate
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    spec = models.get_spec(args.model)
    n = 32 * args.batches
    ds = data.load()
    x, y = data.normalise(ds.train_images[:n]), ds.train_labels[:n]
    model = models.create_model(args.model)
    loss = keras.losses.SparseCategoricalCrossentropy()
    xb, yb = tf.constant(x[:32]), tf.constant(y[:32])
    forward = tf.function(lambda a: model(a, training=True))

    @tf.function
    def forward_backward(a, b):
        with tf.GradientTape() as tape:
            value = loss(b, model(a, training=True))
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(value, model.trainable_variables)])  # every one made

    def repeat(fn):  # ms per call of a compiled function on one batch
        fn().numpy()
        start = time.perf_counter()
        for _ in range(args.batches):
            out = fn()
        out.numpy()
        return (time.perf_counter() - start) / args.batches * 1e3

    def pipeline():
        start = time.perf_counter()
        count = sum(1 for _ in train.augmented(x, y, 32, 0))
        return (time.perf_counter() - start) / count * 1e3

    def fit(batch=32, steps_per_execution=train.STEPS_PER_EXECUTION, jit=False):
        def run():  # ms per 32 images of model.fit, the recipe's optimizer and inputs
            fitted = models.create_model(args.model)
            fitted.compile(optimizer=keras.optimizers.Adam(spec.recipe.learning_rate),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                           steps_per_execution=steps_per_execution, jit_compile=jit)
            inputs = train.fit_inputs(dataclasses.replace(spec.recipe, batch_size=batch), x, y, 0)
            fitted.fit(epochs=1, verbose=0, **inputs)  # compiles
            start = time.perf_counter()
            fitted.fit(epochs=1, verbose=0, **inputs)
            return (time.perf_counter() - start) / (n / 32) * 1e3
        return run

    cases = {"input pipeline (one batch, augmented)": pipeline,
             "forward": lambda: repeat(lambda: forward(xb)),
             "forward + backward": lambda: repeat(lambda: forward_backward(xb, yb)),
             f"fit, as trained (steps_per_execution {train.STEPS_PER_EXECUTION})": fit(),
             "fit, steps_per_execution 1": fit(steps_per_execution=1),
             "fit, XLA (jit_compile)": fit(jit=True),
             "fit, batch 128 (per 32 images)": fit(batch=128)}
    times = {name: [] for name in cases}
    for round_ in range(args.rounds):  # A B ... B A: drift hits every case alike
        for name in (list(cases) if round_ % 2 == 0 else list(cases)[::-1]):
            times[name].append(cases[name]())
    macs = count_macs(model)
    flop = cost.FLOP_PER_MAC_TRAINING * macs * 32
    rate = cost.dense_gflops()
    as_trained = np.median(times[f"fit, as trained (steps_per_execution {train.STEPS_PER_EXECUTION})"])
    rows = [(name, f"{np.median(t):.2f}", f"{np.median(t) / as_trained:.2f}",
             f"{flop / np.median(t) / 1e6:.1f}" if name.startswith("fit") else "")
            for name, t in times.items()]
    print(f"{args.model}: {macs / 1e6:.2f} M MACs an image; one core's dense float32 rate "
          f"{rate:.0f} GFLOP/s (a matmul); medians of {args.rounds} interleaved rounds\n")
    print(tabulate(rows, headers=["one core, batch 32", "ms", "of the step as trained", "GFLOP/s (6 x MACs)"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
