"""Train a model with Bayesian 3-D convolutions on several machines.

Run the same script on every machine, each with its own TF_CONFIG (see
docs/multi-machine.md). Without TF_CONFIG it trains on this machine alone,
with the same seeds, so the two runs can be compared epoch by epoch.

Keras 3's `Model.fit` cannot run under MultiWorkerMirroredStrategy with more
than one worker (it fails for any model, keras-team/keras#20585), so this
script uses TensorFlow's custom training loop: each replica's data loss is
averaged over the global batch and the layers' KL terms are divided by the
number of replicas, so the summed loss counts the KL once.
"""

import argparse
import json
import os

import tensorflow as tf

# MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
if os.environ.get("TF_CONFIG"):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    strategy = tf.distribute.get_strategy()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfprobr_bridge as tb  # noqa: E402

GLOBAL_BATCH = 16
EXAMPLES = 64


def build_model():
    return keras.Sequential([
        keras.Input((4, 4, 4, 1)),
        tb.Conv3DReparameterization(
            2, 3, padding="same", seed=1,
            kernel_divergence_fn=tb.scaled_kl_divergence_fn(EXAMPLES)),
        keras.layers.Flatten(),
        keras.layers.Dense(1),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--output", required=True, help="where to save the .keras model")
    args = parser.parse_args()

    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = build_model()
        optimizer = keras.optimizers.SGD(0.01)
    x = np.random.default_rng(0).random((EXAMPLES, 4, 4, 4, 1)).astype("float32")
    y = np.zeros((EXAMPLES, 1), "float32")

    def dataset_fn(context):
        # Every worker reads the same global batches and keeps its own slice.
        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        start = context.input_pipeline_id * per_replica
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).map(
            lambda a, b: (a[start:start + per_replica], b[start:start + per_replica]))

    batches = strategy.distribute_datasets_from_function(dataset_fn)

    @tf.function
    def train_step(batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                per_example = tf.reduce_mean(tf.square(model(x, training=True) - y), axis=-1)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            variables = model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        return strategy.reduce("SUM", strategy.run(replica_step, args=batch), axis=None)

    losses = []
    for _ in range(args.epochs):
        step_losses = [float(train_step(batch)) for batch in batches]
        losses.append(sum(step_losses) / len(step_losses))
    # The variables are in sync on every worker; the chief (task 0) saves them.
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    if task.get("index", 0) == 0:
        model.save(args.output)
    print("EPOCH_LOSSES", json.dumps(losses), flush=True)


if __name__ == "__main__":
    main()
