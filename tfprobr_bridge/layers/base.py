"""TFP's variational-layer protocol on Keras 3: the one base of the family.

``VariationalLayer`` owns what every member shares: the eight fns (validated,
called at build to make the kernel's and bias's posterior and prior), the
variables they create, the KL losses added on every call, the properties and
the config. It leaves two things to others:

- the *rank shim* (``conv.ConvVariational``, ``dense.DenseVariational``) says
  what the kernel looks like and how inputs meet it (``_parameter_shapes_for``,
  ``_linear``, ``_sign_shape``, output shapes);
- the *estimator* (``estimators``) turns inputs and the kernel posterior into
  outputs in ``_apply_variational_kernel``, as in TFP's ``_ConvVariational``.

Remaking the distributions after Keras's stateless symbolic build is
``rebuild.FnVariables``'s; argument normalisers are ``validation``'s.

A public class is an estimator mixed into a rank shim, plus its rank.
"""

import inspect
import math

import keras
import tensorflow as tf

from tfprobr_bridge.layers import defaults
from tfprobr_bridge.layers import fn_serialization
from tfprobr_bridge.layers import ops
from tfprobr_bridge.layers import rebuild
from tfprobr_bridge.layers import seeding
from tfprobr_bridge import validation

# The eight fns of TFP's protocol, in TFP's order, with their defaults:
# serialisable equivalents of TFP's own (see defaults).
DEFAULT_FNS = {
    "kernel_posterior_fn": defaults.default_mean_field_normal_fn(),
    "kernel_posterior_tensor_fn": defaults.sample,
    "kernel_prior_fn": defaults.default_multivariate_normal_fn,
    "kernel_divergence_fn": defaults.kl_divergence_fn,
    "bias_posterior_fn": defaults.default_mean_field_normal_fn(is_singular=True),
    "bias_posterior_tensor_fn": defaults.sample,
    "bias_prior_fn": None,
    "bias_divergence_fn": defaults.kl_divergence_fn,
}
FN_ARGUMENTS = tuple(DEFAULT_FNS)

# The kernel needs a posterior and a way to draw from it; every other fn may be
# None, which switches that part off (no bias, no prior, no divergence).
_REQUIRED_FNS = ("kernel_posterior_fn", "kernel_posterior_tensor_fn")
# What the layer passes each fn, positionally (TFP's protocol).
_MAKER_PARAMETERS = ("dtype", "shape", "name", "trainable", "add_variable_fn")
FN_PARAMETERS = {
    "kernel_posterior_fn": _MAKER_PARAMETERS,
    "kernel_posterior_tensor_fn": ("distribution",),
    "kernel_prior_fn": _MAKER_PARAMETERS,
    "kernel_divergence_fn": ("q", "p", "sample"),
    "bias_posterior_fn": _MAKER_PARAMETERS,
    "bias_posterior_tensor_fn": ("distribution",),
    "bias_prior_fn": _MAKER_PARAMETERS,
    "bias_divergence_fn": ("q", "p", "sample"),
}

# TensorFlow's kernels index tensors with 32-bit integers.
_MAX_ELEMENTS = 2**31 - 1

_ADD_VARIABLE_IGNORED = frozenset({"use_resource", "partitioner", "caching_device"})

# What keras.layers.Layer takes as keywords.
_KERAS_KEYWORDS = ("name", "dtype", "trainable", "autocast", "input_shape", "input_dim")


def fns_from(arguments):
    """The eight fns among a constructor's ``locals()``, for ``VariationalLayer.__init__``."""
    return {name: arguments[name] for name in FN_ARGUMENTS}


def normalize_fns(fns):
    """Validate the eight fns (a dict by name); return them in TFP's order."""
    normalized = {}
    for name in FN_ARGUMENTS:
        fn = fns[name]
        if name in _REQUIRED_FNS:
            validation.required_callable(fn, name)
        else:
            validation.optional_callable(fn, name)
        if fn is not None:
            validation.callable_taking(fn, name, FN_PARAMETERS[name])
        normalized[name] = fn
    return normalized


class VariationalLayer(keras.layers.Layer):
    """A layer whose kernel and bias are drawn from learned distributions.

    Not for direct use: a public class mixes an estimator into a rank shim.
    """

    # Set by the estimator: how it is named in messages, and whether it draws
    # a whole kernel with `kernel_posterior_tensor_fn` (the divergence fn then
    # gets that kernel as its sample).
    estimator = None
    _draws_kernel = False
    # Whether TFP's class of this estimator takes a `seed` (only Flipout's does).
    _takes_tfp_seed = False

    def __init__(self, activation=None, activity_regularizer=None, seed=None, fns=None, **kwargs):
        # Everything is validated before Keras's constructor runs, so a bad
        # argument leaves no half-made layer (and no used-up layer name).
        validation.known_arguments(kwargs, [
            *(name for name, p in inspect.signature(type(self)).parameters.items()
              if p.kind is not p.VAR_KEYWORD),
            *_KERAS_KEYWORDS,
        ])
        seed = validation.optional_seed(seed)
        activation = validation.activation(activation)
        fns = normalize_fns({**DEFAULT_FNS, **(fns or {})})
        if kwargs.get("dtype") is not None:
            validation.dtype_policy(kwargs["dtype"])
        super().__init__(activity_regularizer=validation.activity_regularizer(activity_regularizer),
                         **kwargs)
        self.activation = activation
        for name, fn in fns.items():
            setattr(self, name, fn)
        self.seed = seed
        self._seed_generator = None if seed is None else keras.random.SeedGenerator(seed)
        self._distributions = _Distributions()
        self._fn_variables = rebuild.FnVariables()
        self._fns_checked = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.estimator is not None:
            cls.__signature__ = _public_signature(cls)

    @classmethod
    def _signature_defaults(cls):
        return {}

    # The four distributions, as TFP's layers expose them. None before build().
    @property
    def kernel_posterior(self):
        return self._distributions.kernel_posterior

    @property
    def kernel_prior(self):
        return self._distributions.kernel_prior

    @property
    def bias_posterior(self):
        return self._distributions.bias_posterior

    @property
    def bias_prior(self):
        return self._distributions.bias_prior

    # What the last call drew, as TFP's layers expose it (None before a call):
    # the kernel (reparameterization), or the output distribution and its
    # draw (local reparameterization) or the perturbation distribution and its
    # draw (Flipout).
    @property
    def kernel_posterior_tensor(self):
        return self._distributions.kernel_posterior_tensor

    @property
    def kernel_posterior_affine(self):
        return self._distributions.kernel_posterior_affine

    @property
    def kernel_posterior_affine_tensor(self):
        return self._distributions.kernel_posterior_affine_tensor

    @property
    def bias_posterior_tensor(self):
        return self._distributions.bias_posterior_tensor

    # --- build ---------------------------------------------------------------

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        kernel_shape, bias_shape = self._parameter_shapes_for(input_shape)
        weights = math.prod(kernel_shape)
        if weights > _MAX_ELEMENTS:
            raise ValueError(
                f"Layer `{self.name}`: a kernel of shape {kernel_shape} has {weights} "
                f"weights, more than TensorFlow can index in one tensor ({_MAX_ELEMENTS}). "
                f"{self._smaller_hint()} Received: {self._size_arguments()}"
            )
        self._parameter_shapes = (tf.as_dtype(self.dtype), kernel_shape, bias_shape)
        self._make_distributions(self._add_variable)
        self._fns_checked = False

    def compute_output_spec(self, *args, **kwargs):
        # A symbolic call (a model built from keras.Input, the functional API)
        # takes the output shape from compute_output_shape and never runs
        # call(), where the tensor and divergence fns are called and checked;
        # tf_keras ran call() there, so its fns were called at construction.
        if self.built and not self._fns_checked:
            self._check_fns()
        return super().compute_output_spec(*args, **kwargs)

    def _check_fns(self):
        """Trace a user's tensor and divergence fns once on the distributions, and check
        what they return, so that a mistake is reported when the model is built, naming
        the fn, not by fit() or blamed on the input.

        Tracing builds a graph and runs nothing: no draw is made and no random
        state moves. The default fns are known to return the right things.
        """
        self._fns_checked = True
        fns = (self.kernel_posterior_tensor_fn, self.bias_posterior_tensor_fn,
               self.kernel_divergence_fn, self.bias_divergence_fn)
        if all(fn is None or _is_trusted(fn) for fn in fns):
            return

        def trial():
            kernel = None
            if self._draws_kernel:
                kernel = self._draw("kernel_posterior_tensor_fn", self.kernel_posterior,
                                    self._parameter_shapes[1], "the kernel")
            bias = None
            if self.bias_posterior is not None:
                bias = self._draw("bias_posterior_tensor_fn", self.bias_posterior,
                                  self._parameter_shapes[2], "the bias")
            self._divergence("kernel_divergence_fn", self.kernel_posterior, self.kernel_prior,
                             kernel)
            self._divergence("bias_divergence_fn", self.bias_posterior, self.bias_prior, bias)

        with tf.init_scope():
            tf.function(trial, autograph=False).get_concrete_function()

    def _make_distributions(self, add_variable_fn):
        """Call the four fns (TFP's protocol) and keep what they return.

        Keras 3 builds an unbuilt layer inside whatever is tracing its first
        call (fit, predict, a user's tf.function). Tensors a fn made there (a
        prior's zeros, a posterior's scale) would belong to that one graph,
        and every later trace would fail to reach them; so, as tf_keras did
        for build(), the fns run lifted out of any function graph.
        """
        dtype, kernel_shape, bias_shape = self._parameter_shapes
        distributions = _Distributions()
        with tf.init_scope():
            for role, shape in (
                ("kernel_posterior", kernel_shape),
                ("kernel_prior", kernel_shape),
                ("bias_posterior", bias_shape),
                ("bias_prior", bias_shape),
            ):
                fn = getattr(self, f"{role}_fn")
                if fn is not None:
                    distribution = fn(dtype, shape, role, self.trainable, add_variable_fn)
                    _check_distribution(distribution, f"{role}_fn", fn, shape, role)
                    setattr(distributions, role, distribution)
        self._distributions = distributions

    def _remake_distributions(self):
        """Make the distributions again on the fns' variables, once those exist
        (after Keras's stateless symbolic build; see ``rebuild``)."""
        if self._fn_variables.ready():
            self._make_distributions(self._fn_variables.replay(self.name))

    def _add_variable(
        self,
        name,
        shape,
        initializer=None,
        regularizer=None,
        constraint=None,
        dtype=None,
        trainable=True,
        **kwargs,
    ):
        """The ``add_variable_fn`` handed to posterior and prior fns: a Keras weight,
        of which the distribution reads the TensorFlow variable (``rebuild``)."""
        unknown = set(kwargs) - _ADD_VARIABLE_IGNORED
        if unknown:
            raise TypeError(
                f"`add_variable_fn` got unexpected keyword arguments {sorted(unknown)} "
                f"for variable {name!r}."
            )
        shape = tuple(int(dim) for dim in shape)
        try:
            variable = self.add_weight(
                name=name,
                shape=shape,
                initializer=initializer,
                regularizer=regularizer,
                constraint=constraint,
                dtype=None if dtype is None else tf.as_dtype(dtype).name,
                trainable=trainable,
                # The layer casts what it draws itself; the distributions
                # must read the variables in their own dtype.
                autocast=False,
            )
        except tf.errors.ResourceExhaustedError as error:
            size = math.prod(shape) * tf.as_dtype(dtype or self.dtype).size / 2**30
            raise ops.with_context(
                error,
                f"Layer `{self.name}` could not allocate variable {name!r} of shape "
                f"{shape} ({size:.1f} GiB). {self._smaller_hint()} "
                f"Received: {self._size_arguments()}",
            ) from None
        return self._fn_variables.record(name, variable)

    # --- call ----------------------------------------------------------------

    def call(self, inputs):
        if self._fn_variables.stand_ins:
            self._remake_distributions()
        inputs = tf.convert_to_tensor(inputs)
        if not inputs.dtype.is_floating:
            # Keras casts float inputs to the compute dtype; integers and
            # booleans are numbers too (Keras's Dense returns floats for them).
            if inputs.dtype.is_complex or inputs.dtype == tf.string:
                raise TypeError(
                    f"Layer `{self.name}` takes real numbers, but was called on a tensor of "
                    f"dtype {inputs.dtype.name}. Received: inputs.dtype={inputs.dtype.name}"
                )
            inputs = tf.cast(inputs, self.compute_dtype)
        try:
            with seeding.sampling_seed(self._seed_generator):
                outputs = self._apply_variational_kernel(inputs)
                outputs = self._apply_variational_bias(outputs)
        except tf.errors.ResourceExhaustedError as error:
            raise ops.with_context(
                error,
                f"Layer `{self.name}` ran out of memory on an input of shape "
                f"{tuple(inputs.shape)}. Use smaller batches or a smaller layer. "
                f"Received: {self._size_arguments()}",
            ) from None
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                f"Layer `{self.name}`: TensorFlow rejected an input of shape "
                f"{tuple(inputs.shape)} with these arguments ({ops.tf_message(error)}). "
                f"Received: {self._geometry_arguments()}"
            ) from None
        if self.activation is not None:
            outputs = self.activation(outputs)
        for part in ("kernel", "bias"):
            divergence = self._divergence(
                f"{part}_divergence_fn",
                getattr(self, f"{part}_posterior"),
                getattr(self, f"{part}_prior"),
                getattr(self, f"{part}_posterior_tensor"),
            )
            if divergence is not None:
                self.add_loss(tf.identity(divergence, name=f"divergence_{part}"))
        return outputs

    def _apply_variational_kernel(self, inputs):
        """The estimator's hook: inputs and the kernel posterior to outputs."""
        raise NotImplementedError

    def _apply_variational_bias(self, outputs):
        if self.bias_posterior is None:
            self._distributions.bias_posterior_tensor = None
            return outputs
        bias = self._draw("bias_posterior_tensor_fn", self.bias_posterior,
                          self._parameter_shapes[2], "the bias")
        self._distributions.bias_posterior_tensor = bias
        return ops.bias_add(outputs, bias, self._bias_data_format())

    def _draw(self, name, distribution, shape, what):
        """The tensor fn ``name`` applied to ``distribution``, checked to be numbers of ``shape``.

        A fn that returns something else would otherwise fail later, in
        TensorFlow's words, blaming the layer's input.
        """
        fn = getattr(self, name)
        value = fn(distribution)
        try:
            tensor = tf.convert_to_tensor(value)
        except (TypeError, ValueError):
            tensor = None
        if tensor is None or not (tensor.dtype.is_floating or tensor.dtype.is_integer):
            raise TypeError(
                f"`{name}` must return a tensor of real numbers, {what} (shape "
                f"{_shape_text(shape)}), but returned {describe_value(value)}. "
                f"Received: {name}={describe_fn(fn)}"
            )
        if not tensor.shape.is_compatible_with(shape):
            raise ValueError(
                f"`{name}` must return {what}, a tensor of shape {_shape_text(shape)}, but "
                f"returned one of shape {_shape_text(tensor.shape)}. "
                f"Received: {name}={describe_fn(fn)}"
            )
        # The value itself, not its conversion: the divergence fn gets the very
        # tensor the tensor fn returned (TFP's protocol).
        return value

    def _divergence(self, name, posterior, prior, posterior_tensor):
        """The divergence fn ``name``'s value as a scalar; None when that part has none.

        Checked, so that a fn returning a string or a vector is reported here,
        naming it, not by ``fit()`` as a failed cast.
        """
        divergence_fn = getattr(self, name)
        if divergence_fn is None or posterior is None or prior is None:
            return None
        value = divergence_fn(posterior, prior, posterior_tensor)
        try:
            divergence = tf.convert_to_tensor(value)
        except (TypeError, ValueError):
            divergence = None
        if divergence is None or not (divergence.dtype.is_floating or divergence.dtype.is_integer):
            raise TypeError(
                f"`{name}` must return a number, the divergence added to the loss, but "
                f"returned {describe_value(value)}. Received: {name}={describe_fn(divergence_fn)}"
            )
        if divergence.shape.num_elements() != 1:
            raise ValueError(
                f"`{name}` must return one number (a scalar), the divergence added to the "
                f"loss, but returned a tensor of shape {_shape_text(divergence.shape)}: sum it "
                f"(tf.reduce_sum). Received: {name}={describe_fn(divergence_fn)}"
            )
        if not divergence.dtype.is_floating:
            divergence = tf.cast(divergence, self.variable_dtype)
        return tf.reshape(divergence, [])

    def _record(self, kernel_tensor=None, affine=None, affine_tensor=None):
        """Keep what this call drew, for the properties TFP's layers expose."""
        self._distributions.kernel_posterior_tensor = kernel_tensor
        self._distributions.kernel_posterior_affine = affine
        self._distributions.kernel_posterior_affine_tensor = affine_tensor

    def _independent_normal_posterior(self):
        """The kernel posterior's Normal, which Flipout and local reparameterization need."""
        posterior = self.kernel_posterior
        inner = getattr(posterior, "distribution", None)
        if not isinstance(posterior, defaults.tfd.Independent) or not isinstance(
            inner, defaults.tfd.Normal
        ):
            raise TypeError(
                f"{type(self).__name__} ({self.estimator}) needs `kernel_posterior_fn` to "
                "return an Independent Normal (tfd.Independent(tfd.Normal(...)), as "
                "default_mean_field_normal_fn() does): the estimator uses the posterior's "
                "mean and scale. Use the reparameterization layer for other posteriors. "
                f"Received: kernel_posterior_fn returned {describe_distribution(posterior)}"
            )
        return inner

    def _kernel_mean_and_scale(self):
        """The Normal posterior's mean and scale, each of the kernel's full shape.

        A posterior may hold a scalar scale (``Normal(zeros(shape), 1.)``, as
        TFP's own tests write) or a scalar mean; the kernel's operation needs both whole.
        """
        normal = self._independent_normal_posterior()
        kernel_shape = self._parameter_shapes[1]
        parameters = []
        for value in (normal.loc, normal.scale):
            value = tf.convert_to_tensor(value)
            if tuple(value.shape) != tuple(kernel_shape):
                value = tf.broadcast_to(value, kernel_shape)
            parameters.append(value)
        return tuple(parameters)

    # --- shape of the rank shim (overridden) ---------------------------------

    def _parameter_shapes_for(self, input_shape):
        """(kernel shape, bias shape) for inputs of ``input_shape``; validates it."""
        raise NotImplementedError

    def _linear(self, inputs, kernel):
        """The deterministic layer's operation: inputs meet one kernel."""
        raise NotImplementedError

    def _sign_shape(self, tensor, channels):
        """Shape of Flipout's signs for ``tensor`` with ``channels`` channels."""
        raise NotImplementedError

    def _bias_data_format(self):
        return "channels_last"

    def _smaller_hint(self):
        return "Use a smaller layer."

    def _size_arguments(self):
        return ""

    def _geometry_arguments(self):
        return self._size_arguments()

    # --- config --------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config["activation"] = (
            keras.activations.serialize(self.activation) if self.activation is not None else None
        )
        config["seed"] = self.seed
        for name in FN_ARGUMENTS:
            config[name] = fn_serialization.serialize_fn(getattr(self, name), name)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in FN_ARGUMENTS:
            if name in config:
                config[name] = fn_serialization.deserialize_fn(config[name], name)
        return cls(**config)


def _public_signature(cls):
    """TFP's constructor signature for ``cls``: ``seed`` is shown only where TFP has it.

    Every member takes ``seed`` (its own random stream), but TFP names it only
    for Flipout; for the others it is one of the Keras keywords, as before.
    """
    signature = inspect.signature(cls.__init__)
    defaults = cls._signature_defaults()
    parameters = [
        parameter.replace(default=defaults.get(parameter.name, parameter.default))
        for parameter in list(signature.parameters.values())[1:]
        if parameter.name != "seed" or cls._takes_tfp_seed
    ]
    return signature.replace(parameters=parameters)


class _Distributions:
    """The distributions and the last call's draws, outside Keras's and TF's tracking.

    They reference the layer's variables, which Keras already tracks; letting
    TF's AutoTrackable adopt them too would give each variable a second path.
    """

    def __init__(self):
        self.kernel_posterior = None
        self.kernel_prior = None
        self.bias_posterior = None
        self.bias_prior = None
        self.kernel_posterior_tensor = None
        self.kernel_posterior_affine = None
        self.kernel_posterior_affine_tensor = None
        self.bias_posterior_tensor = None


def _is_trusted(fn):
    """This package's default tensor and divergence fns, which need no trial."""
    return fn is defaults.sample or fn is defaults.kl_divergence_fn or isinstance(
        fn, defaults.ScaledKLDivergence
    )


def _check_distribution(distribution, name, fn, shape, role):
    """What a posterior or prior fn returns: a TFP distribution over the parameter's shape.

    A prior or the bias's posterior may be None (that part is then absent, as
    in TFP's layers); the kernel's posterior may not.
    """
    what = "the kernel" if role.startswith("kernel") else "the bias"
    if distribution is None and role != "kernel_posterior":
        return
    if not isinstance(distribution, defaults.tfd.Distribution):
        raise TypeError(
            f"`{name}` must return a TensorFlow Probability distribution over {what} "
            f"(shape {_shape_text(shape)}), but returned {describe_value(distribution)}. "
            f"Received: {name}={describe_fn(fn)}"
        )
    try:
        full = distribution.batch_shape.concatenate(distribution.event_shape)
    except (AttributeError, TypeError, ValueError):
        return  # A stand-in without shapes (TFP's own tests pass such mocks).
    if full.is_fully_defined():
        try:
            fits = tf.broadcast_static_shape(full, tf.TensorShape(shape)) == tf.TensorShape(shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"`{name}` must return a distribution over {what}, of shape "
                f"{_shape_text(shape)}, but returned one of shape {_shape_text(full)} "
                f"({describe_distribution(distribution)} with batch shape "
                f"{_shape_text(distribution.batch_shape)} and event shape "
                f"{_shape_text(distribution.event_shape)}). Received: {name}={describe_fn(fn)}"
            )


def _shape_text(shape):
    dims = tf.TensorShape(shape).as_list() if tf.TensorShape(shape).rank is not None else None
    if dims is None:
        return "unknown"
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def describe_value(value):
    if value is None:
        return "None"
    if isinstance(value, defaults.tfd.Distribution):
        return f"a distribution, {describe_distribution(value)}"
    if tf.is_tensor(value) or hasattr(value, "shape"):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype " \
               f"{getattr(value.dtype, 'name', value.dtype)}"
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} of type {type(value).__name__}"


def describe_fn(fn):
    name = getattr(fn, "__name__", None)
    return name if name and name != "<lambda>" else fn_serialization.fn_repr(fn)


def describe_distribution(distribution):
    if distribution is None:
        return "None"
    inner = getattr(distribution, "distribution", None)
    if inner is not None:
        return f"{type(distribution).__name__}({type(inner).__name__})"
    return type(distribution).__name__
