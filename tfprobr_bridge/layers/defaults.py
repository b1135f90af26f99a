"""Serialisable equivalents of TFP's default posterior, prior, sample and KL fns.

TFP's defaults are closures and lambdas: correct, but a Keras 3 model cannot
save them. These are registered Keras objects with the same call protocol and
the same math, so a model built with the defaults saves and loads without
``custom_objects`` and without unsafe deserialisation.

The protocol (TFP's):
    posterior/prior fn: ``fn(dtype, shape, name, trainable, add_variable_fn)``
        -> a ``tfd.Distribution`` (``None`` allowed for a prior fn's result).
    tensor fn: ``fn(distribution)`` -> a tensor.
    divergence fn: ``fn(posterior, prior, posterior_tensor)`` -> scalar tensor.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge import validation
from tfprobr_bridge.layers import ops
from tfprobr_bridge.layers import seeding

tfd = tfp.distributions

_PACKAGE = "tfprobr_bridge"


def _initializer(value, name):
    initializer = keras.initializers.get(value)
    if not callable(initializer):
        raise TypeError(
            f"`{name}` must be a Keras initializer. "
            f"{validation.received(name, value)}"
        )
    return initializer


def _undeprecated(add_variable_fn):
    """TFP's tf_keras layers pass their deprecated ``add_variable``, which warns.

    Its replacement ``add_weight`` takes the same arguments.
    """
    owner = getattr(add_variable_fn, "__self__", None)
    if getattr(add_variable_fn, "__name__", None) == "add_variable" and hasattr(
        owner, "add_weight"
    ):
        return owner.add_weight
    return add_variable_fn


def _fresh(initializer):
    """A copy of ``initializer`` for one variable.

    An unseeded Keras 3 initializer draws its seed once, when it is made, and
    then returns the same values at every call. One posterior fn serves many
    variables (and, as a default argument, many layers), so each variable gets
    its own copy: unseeded copies draw new seeds, seeded copies repeat the
    user's seed, as Keras does.
    """
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


def softplus_normal(loc, untransformed_scale, dtype, event_ndims):
    """``Independent(Normal(loc, eps + softplus(untransformed_scale)))``: TFP's
    parameterisation of a mean-field Normal, shared by the default posterior and
    the empirical prior, so the two given the same values are the same distribution."""
    epsilon = np.finfo(tf.as_dtype(dtype).as_numpy_dtype).eps
    scale = tfp.util.DeferredTensor(untransformed_scale, lambda x: epsilon + tf.nn.softplus(x))
    return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=event_ndims)


def softplus_inverse(x):
    """``log(exp(x) - 1)``, accurate for small x (about log x) and large x (about x)."""
    x = np.asarray(x, dtype=np.float64)
    return x + np.log(-np.expm1(-x))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MeanFieldNormal:
    """A posterior fn: independent Normals (or point masses) with trainable parameters.

    The serialisable equivalent of
    ``tfp.layers.util.default_mean_field_normal_fn(is_singular, ...)``: it creates
    the variables ``{name}_loc`` and, unless ``is_singular``,
    ``{name}_untransformed_scale``, and returns
    ``Independent(Normal(loc, eps + softplus(untransformed_scale)))`` or, when
    ``is_singular``, ``Independent(Deterministic(loc))``, with every parameter
    dimension reinterpreted as an event dimension.

    Args:
        is_singular: If True, the distribution is a point mass at ``loc``.
        loc_initializer: Keras initializer for ``loc``. Default N(0, 0.1).
        untransformed_scale_initializer: Keras initializer for the scale before
            softplus. Default N(-3, 0.1), so the scale starts near 0.05.
        loc_regularizer, untransformed_scale_regularizer: Keras regularizers.
        loc_constraint, untransformed_scale_constraint: Keras constraints.
    """

    def __init__(
        self,
        is_singular=False,
        loc_initializer=None,
        untransformed_scale_initializer=None,
        loc_regularizer=None,
        untransformed_scale_regularizer=None,
        loc_constraint=None,
        untransformed_scale_constraint=None,
    ):
        self.is_singular = validation.boolean(is_singular, "is_singular")
        self.loc_initializer = _initializer(
            loc_initializer
            if loc_initializer is not None
            else keras.initializers.RandomNormal(mean=0.0, stddev=0.1),
            "loc_initializer",
        )
        self.untransformed_scale_initializer = _initializer(
            untransformed_scale_initializer
            if untransformed_scale_initializer is not None
            else keras.initializers.RandomNormal(mean=-3.0, stddev=0.1),
            "untransformed_scale_initializer",
        )
        self.loc_regularizer = keras.regularizers.get(loc_regularizer)
        self.untransformed_scale_regularizer = keras.regularizers.get(
            untransformed_scale_regularizer
        )
        self.loc_constraint = keras.constraints.get(loc_constraint)
        self.untransformed_scale_constraint = keras.constraints.get(
            untransformed_scale_constraint
        )

    def __call__(self, dtype, shape, name, trainable, add_variable_fn):
        dtype = tf.as_dtype(dtype)
        add_variable_fn = _undeprecated(add_variable_fn)

        def variable(role):  # role: "loc" or "untransformed_scale"
            return add_variable_fn(
                name=f"{name}_{role}",
                shape=shape,
                initializer=_fresh(getattr(self, f"{role}_initializer")),
                regularizer=getattr(self, f"{role}_regularizer"),
                constraint=getattr(self, f"{role}_constraint"),
                dtype=dtype,
                trainable=trainable,
            )

        loc = variable("loc")
        if self.is_singular:
            return tfd.Independent(tfd.Deterministic(loc=loc), reinterpreted_batch_ndims=len(shape))
        return softplus_normal(loc, variable("untransformed_scale"), dtype, len(shape))

    def get_config(self):
        config = {"is_singular": self.is_singular}
        for role in ("loc", "untransformed_scale"):
            for kind in ("initializer", "regularizer", "constraint"):
                key = f"{role}_{kind}"
                config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config):
        deserialize = keras.saving.deserialize_keras_object
        return cls(**{key: deserialize(value) for key, value in config.items()})

    def __eq__(self, other):
        # Unseeded initializers serialise their seed as None, so equal configs
        # mean "the same recipe", which is what equality of fns should say.
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash((type(self), self.is_singular))

    def __repr__(self):
        return f"default_mean_field_normal_fn(is_singular={self.is_singular})"


def default_mean_field_normal_fn(
    is_singular=False,
    loc_initializer=None,
    untransformed_scale_initializer=None,
    loc_regularizer=None,
    untransformed_scale_regularizer=None,
    loc_constraint=None,
    untransformed_scale_constraint=None,
):
    """Serialisable ``tfp.layers.util.default_mean_field_normal_fn``.

    Returns a :class:`MeanFieldNormal` posterior fn; see it for the arguments.
    """
    return MeanFieldNormal(
        is_singular=is_singular,
        loc_initializer=loc_initializer,
        untransformed_scale_initializer=untransformed_scale_initializer,
        loc_regularizer=loc_regularizer,
        untransformed_scale_regularizer=untransformed_scale_regularizer,
        loc_constraint=loc_constraint,
        untransformed_scale_constraint=untransformed_scale_constraint,
    )


@keras.saving.register_keras_serializable(package=_PACKAGE)
def default_multivariate_normal_fn(dtype, shape, name, trainable, add_variable_fn):
    """A prior fn: the standard Normal over every parameter, no variables.

    Serialisable ``tfp.layers.util.default_multivariate_normal_fn``.
    """
    del name, trainable, add_variable_fn  # The standard Normal has no parameters.
    dtype = tf.as_dtype(dtype)
    normal = tfd.Normal(loc=tf.zeros(shape, dtype), scale=dtype.as_numpy_dtype(1))
    return tfd.Independent(normal, reinterpreted_batch_ndims=len(shape))


@keras.saving.register_keras_serializable(package=_PACKAGE)
def sample(distribution):
    """A tensor fn: one draw from ``distribution`` (TFP's ``lambda d: d.sample()``).

    For the default posteriors (a ``Normal`` or a ``Deterministic``, or an
    ``Independent`` wrapping one) the draw is made directly, ``loc + scale * eps`` with
    ``eps ~ N(0, 1)`` (:func:`ops.standard_normal`; or ``loc``): the same
    reparameterized sample TFP draws,
    with fewer graph ops on the training step's hot path. Any other
    distribution is sampled by TFP. Inside a layer built with ``seed=``, draws
    come from that layer's own seed generator, so they repeat run after run.
    """
    generator = seeding.current_sampling_seed()
    inner = (
        distribution.distribution if isinstance(distribution, tfd.Independent) else distribution
    )
    if type(inner) is tfd.Deterministic:
        return tf.convert_to_tensor(inner.loc)
    if type(inner) is tfd.Normal:
        loc = tf.convert_to_tensor(inner.loc)
        scale = tf.convert_to_tensor(inner.scale)
        shape = tf.broadcast_dynamic_shape(tf.shape(loc), tf.shape(scale))
        return loc + scale * ops.standard_normal(shape, loc.dtype, generator)
    if generator is None:
        return distribution.sample()
    return distribution.sample(seed=tf.cast(generator.next(), tf.int32))


@keras.saving.register_keras_serializable(package=_PACKAGE)
def kl_divergence_fn(posterior, prior, posterior_tensor):
    """A divergence fn: the analytic ``KL(posterior || prior)``; the sample is unused.

    TFP's ``lambda q, p, ignore: kl_divergence(q, p)``. With the default
    ``Independent`` distributions the KL is summed over every parameter.
    """
    del posterior_tensor  # The analytic KL needs no sample.
    return tfd.kl_divergence(posterior, prior)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledKLDivergence:
    """A divergence fn: the analytic KL divided by the examples per epoch.

    Keras adds a layer's losses to every batch's mean loss, so a KL that
    should count once per epoch must be divided by the number of training
    examples the loss averages over (for segmentation, every labelled voxel
    is an example). Unlike a lambda or an R closure, this saves with the
    model and loads in Keras's safe mode.

    Args:
        num_examples: Positive number of examples per epoch.
    """

    def __init__(self, num_examples):
        self.num_examples = validation.positive_number(num_examples, "num_examples")

    def __call__(self, posterior, prior, posterior_tensor):
        del posterior_tensor  # The analytic KL needs no sample.
        divergence = tfd.kl_divergence(posterior, prior)
        return divergence / tf.cast(self.num_examples, divergence.dtype)

    def get_config(self):
        return {"num_examples": self.num_examples}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) is type(self) and other.num_examples == self.num_examples

    def __hash__(self):
        return hash((type(self), self.num_examples))

    def __repr__(self):
        return f"scaled_kl_divergence_fn(num_examples={self.num_examples:g})"


def scaled_kl_divergence_fn(num_examples):
    """A serialisable ``lambda q, p, _: kl_divergence(q, p) / num_examples``.

    Returns a :class:`ScaledKLDivergence`.
    """
    return ScaledKLDivergence(num_examples)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EmpiricalNormalPrior:
    """A prior fn: independent Normals with fixed parameters kept in the weights file.

    It creates two non-trainable variables, ``{name}_loc`` and
    ``{name}_untransformed_scale``, and returns
    ``Independent(Normal(loc, eps + softplus(untransformed_scale)))`` over every
    parameter dimension: the parameterisation of :class:`MeanFieldNormal`'s
    posterior, so a prior and a posterior given the same values are the same
    distribution. The variables start as the standard Normal (``loc`` 0,
    scale 1); :func:`tfprobr_bridge.to_bayesian` with ``prior="empirical"`` then assigns them
    the trained weights. Their values are weights, not config: they are saved
    and loaded with the model's other weights, never trained, and the config
    stays empty, so the fn loads in Keras's safe mode.
    """

    def __call__(self, dtype, shape, name, trainable, add_variable_fn):
        del trainable  # A prior is never trained, whatever the layer's setting.
        dtype = tf.as_dtype(dtype)
        epsilon = np.finfo(dtype.as_numpy_dtype).eps
        loc = add_variable_fn(
            name=f"{name}_loc",
            shape=shape,
            initializer=keras.initializers.Zeros(),
            dtype=dtype,
            trainable=False,
        )
        untransformed_scale = add_variable_fn(
            name=f"{name}_untransformed_scale",
            shape=shape,
            initializer=keras.initializers.Constant(float(softplus_inverse(1.0 - epsilon))),
            dtype=dtype,
            trainable=False,
        )
        return softplus_normal(loc, untransformed_scale, dtype, len(shape))

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return "EmpiricalNormalPrior()"
