"""Training-step benchmark: this layer vs TFP's own class vs a deterministic Conv3D.

All contenders run in one process, interleaved round by round (the order
rotates each round), after a warm-up, so machine drift hits them alike.
Reports the median, min and max time per training step over the rounds, and
the ratio to TFP's class. Writes bench/results/train_step.json and .md.

    python bench/run.py [--rounds 7] [--steps 5] [--sizes 16x16,32x8,64x2]
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
import tf_keras  # noqa: E402

import tfprobr_bridge  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CLASSES = 2


def ours(size):
    return keras.Sequential(
        [
            keras.Input((size, size, size, 1)),
            tfprobr_bridge.Conv3DReparameterization(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling3D(2),
            tfprobr_bridge.Conv3DReparameterization(16, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dense(CLASSES),
        ]
    )


def tfp_reference(size):
    return tf_keras.Sequential(
        [
            tf_keras.layers.InputLayer(input_shape=(size, size, size, 1)),
            tfp.layers.Convolution3DReparameterization(8, 3, padding="same", activation="relu"),
            tf_keras.layers.MaxPooling3D(2),
            tfp.layers.Convolution3DReparameterization(16, 3, padding="same", activation="relu"),
            tf_keras.layers.GlobalAveragePooling3D(),
            tf_keras.layers.Dense(CLASSES),
        ]
    )


def deterministic(size):
    return keras.Sequential(
        [
            keras.Input((size, size, size, 1)),
            keras.layers.Conv3D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling3D(2),
            keras.layers.Conv3D(16, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dense(CLASSES),
        ]
    )


CONTENDERS = {
    "tfprobr_bridge (Keras 3)": (ours, keras),
    "TFP Convolution3DReparameterization (tf_keras)": (tfp_reference, tf_keras),
    "deterministic Keras 3 Conv3D": (deterministic, keras),
}
REFERENCE = "TFP Convolution3DReparameterization (tf_keras)"


def compiled(make, library, size):
    model = make(size)
    model.compile(
        optimizer=library.optimizers.Adam(1e-3),
        loss=library.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def time_steps(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def machine():
    cpu = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_keras": tf_keras.__version__,
        "tensorflow_probability": tfp.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def run(sizes, rounds, steps, warmup):
    rng = np.random.default_rng(0)
    results = []
    for size, batch in sizes:
        x = rng.standard_normal((batch, size, size, size, 1)).astype("float32")
        y = rng.integers(0, CLASSES, batch)
        models = {name: compiled(make, lib, size) for name, (make, lib) in CONTENDERS.items()}
        for model in models.values():
            time_steps(model, x, y, warmup)
        timings = {name: [] for name in models}
        names = list(models)
        for round_index in range(rounds):
            order = names[round_index % len(names):] + names[: round_index % len(names)]
            for name in order:
                timings[name].append(time_steps(models[name], x, y, steps))
        reference = statistics.median(timings[REFERENCE])
        for name, values in timings.items():
            median = statistics.median(values)
            results.append(
                {
                    "size": f"{size}^3 x batch {batch}",
                    "contender": name,
                    "median_ms": median * 1e3,
                    "min_ms": min(values) * 1e3,
                    "max_ms": max(values) * 1e3,
                    "ratio_to_tfp": median / reference,
                    "rounds": rounds,
                    "steps_per_round": steps,
                }
            )
        print(f"done {size}^3 x {batch}", file=sys.stderr)
    return results


def markdown(results):
    lines = [
        "| input | contender | median ms/step | min | max | vs TFP |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in results:
        lines.append(
            f"| {row['size']} | {row['contender']} | {row['median_ms']:.1f} | "
            f"{row['min_ms']:.1f} | {row['max_ms']:.1f} | {row['ratio_to_tfp']:.2f}x |"
        )
    return "\n".join(lines)


def parse_sizes(text):
    sizes = []
    for item in text.split(","):
        size, batch = item.lower().split("x")
        sizes.append((int(size), int(batch)))
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("16x16,32x8,64x2"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    results = run(args.sizes, args.rounds, args.steps, args.warmup)
    RESULTS.mkdir(exist_ok=True)
    record = {"benchmark": "train_step", "machine": machine(), "results": results}
    (RESULTS / "train_step.json").write_text(json.dumps(record, indent=2) + "\n")
    table = markdown(results)
    (RESULTS / "train_step.md").write_text(
        f"Machine: {record['machine']['cpu']}, {record['machine']['cores']} cores, "
        f"TF {tf.__version__}, Keras {keras.__version__}, TFP {tfp.__version__}\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
