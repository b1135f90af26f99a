"""Where a layer's draws take their randomness.

A layer built with ``seed=`` draws from its own ``keras.random.SeedGenerator``;
``predict_mc`` keys every draw of a Monte Carlo sample by ``(seed, sample)``
(``MonteCarloStream``); otherwise draws come from TensorFlow's global random
state. The layer's estimators and ``defaults.sample`` ask ``current_sampling_seed()``.
"""

import contextlib
import contextvars

import tensorflow as tf

# Where the layer drawing right now takes its randomness: its own
# SeedGenerator (its `seed` argument), a Monte Carlo stream, or None
# (TensorFlow's global random state).
_SAMPLING_SEED = contextvars.ContextVar("tfprobr_sampling_seed", default=None)


def current_sampling_seed():
    """What ``sample`` and the estimators draw from now: an object with
    ``next()`` giving a stateless seed, or None for TensorFlow's global state."""
    return _SAMPLING_SEED.get()


@contextlib.contextmanager
def sampling_seed(generator):
    """Within the block, draws come from ``generator`` (a layer's SeedGenerator or None),
    unless a Monte Carlo stream is active, which every draw inside it follows."""
    current = _SAMPLING_SEED.get()
    token = _SAMPLING_SEED.set(current if isinstance(current, MonteCarloStream) else generator)
    try:
        yield
    finally:
        _SAMPLING_SEED.reset(token)


class MonteCarloStream:
    """Seeds for every draw of Monte Carlo sample ``index`` of a run keyed by ``base``.

    Each draw's seed is a function of ``(base, index, k)``, ``k`` counting the
    draws in the order the sample's graph makes them, so a sample's draws do
    not depend on when it runs: ``predict_mc`` can let TensorFlow run samples
    in parallel and still give the same numbers run after run.
    """

    # Draws of one sample are told apart by k; a prime step keeps the first
    # seed word distinct for k < (2**31 - 1) / _STEP, far more draws than a
    # network makes.
    _STEP = 1_000_003

    def __init__(self, base, index):
        self._base = tf.cast(base, tf.int64)
        self._index = tf.cast(index, tf.int64)
        self._count = 0

    def next(self):
        word = (self._base + self._count * self._STEP) % (2**31 - 1)
        self._count += 1
        return tf.stack([word, self._index])


@contextlib.contextmanager
def monte_carlo_sample(base, index):
    """Within the block, every draw of this package's layers is keyed by ``(base, index)``."""
    token = _SAMPLING_SEED.set(MonteCarloStream(base, index))
    try:
        yield
    finally:
        _SAMPLING_SEED.reset(token)
