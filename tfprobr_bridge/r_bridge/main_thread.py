"""R functions as fns: callable from the main thread only, with a clear error elsewhere.

``tf.distribute.MirroredStrategy`` runs each replica's step, and so the
layer's fns while Keras traces it, on a thread of its own, even with one
device. R can only run on the main thread: R called from another thread
aborts the whole process (reticulate cannot stop it). Handing the call to
the main thread does not help either: the main thread waits for the
replicas, and ``merge_call`` would run the fn where the replica's gradient
tape cannot see it (TensorFlow records gradients per thread), so training
would silently change. A wrapped fn therefore runs as usual on the main
thread and raises an error naming the argument anywhere else.
"""

import threading


def main_thread_fn(fn, name):
    """``fn`` (the layer's argument ``name``), refused clearly off the main thread."""
    if fn is None or isinstance(fn, MainThreadFn):
        return fn
    return MainThreadFn(fn, name)


class MainThreadFn:
    """Wraps an R function ``fn`` given as the layer's argument ``name``."""

    def __init__(self, fn, name):
        self.fn = fn
        self.name = name

    @property
    def save_hint(self):
        """Why it cannot be saved, and what saves instead (R functions cannot be serialised
        into a .keras file)."""
        from tfprobr_bridge.layers.base import FN_PARAMETERS

        if self.name in FN_PARAMETERS:  # a variational layer's fn: Python has defaults
            return ("An R function cannot be saved with a model. For a model that saves, leave "
                    "the fn at its default or, for a KL divided by the number of examples, use "
                    "scaled_kl_divergence_fn(n); save_model_weights() keeps the weights of any "
                    "model.")
        return ("An R function cannot be saved with a model. save_model_weights() keeps the "
                "weights: rebuild the model with the same R code, then load_model_weights().")

    def __call__(self, *args):
        if threading.current_thread() is threading.main_thread():
            return self.fn(*args)
        raise RuntimeError(
            f"`{self.name}` is an R function, and R can only run on the main thread, but "
            f"the layer called it from another thread ({threading.current_thread().name}; "
            "tf.distribute.MirroredStrategy runs every replica on a thread of its own). "
            f"Use a Python fn for `{self.name}` there: leave it at its default, or, for a "
            "KL divided by the number of examples, pass scaled_kl_divergence_fn(n). "
            f"Received: {self.name}=an R function"
        )

    def __repr__(self):
        return f"<R function given as {self.name}>"
