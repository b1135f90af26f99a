"""The rank-generic Bayesian convolution behind ``Conv3DReparameterization``.

A Keras 3 layer (TensorFlow backend) that follows TFP's variational-layer
protocol: distributions made by user-replaceable fns at build time, one
posterior draw per call shared by the whole batch, KL divergences added with
``add_loss``. 1-D and 2-D variants are thin shims that pass ``rank``.
"""

import math
import re

import keras
import tensorflow as tf

from tfprobr_bridge import _defaults
from tfprobr_bridge import _fn_serialization
from tfprobr_bridge import _validation

FN_ARGUMENTS = (
    "kernel_posterior_fn",
    "kernel_posterior_tensor_fn",
    "kernel_prior_fn",
    "kernel_divergence_fn",
    "bias_posterior_fn",
    "bias_posterior_tensor_fn",
    "bias_prior_fn",
    "bias_divergence_fn",
)
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

DEFAULT_FNS = {
    "kernel_posterior_fn": _defaults.default_mean_field_normal_fn(),
    "kernel_posterior_tensor_fn": _defaults.sample,
    "kernel_prior_fn": _defaults.default_multivariate_normal_fn,
    "kernel_divergence_fn": _defaults.kl_divergence_fn,
    "bias_posterior_fn": _defaults.default_mean_field_normal_fn(is_singular=True),
    "bias_posterior_tensor_fn": _defaults.sample,
    "bias_prior_fn": None,
    "bias_divergence_fn": _defaults.kl_divergence_fn,
}

# TensorFlow's kernels index tensors with 32-bit integers.
_MAX_ELEMENTS = 2**31 - 1

_ADD_VARIABLE_IGNORED = frozenset({"use_resource", "partitioner", "caching_device"})


def normalize_arguments(
    rank,
    filters,
    kernel_size,
    strides,
    padding,
    data_format,
    dilation_rate,
    activation,
    **fns,
):
    """Validate and normalise a convolution's arguments; raise in Keras's form."""
    arguments = {
        "filters": _validation.positive_integer(filters, "filters"),
        "kernel_size": _validation.positive_integer_tuple(
            kernel_size, rank, "kernel_size"
        ),
        "strides": _validation.positive_integer_tuple(strides, rank, "strides"),
        "padding": _validation.padding(padding),
        "data_format": _validation.data_format(data_format),
        "dilation_rate": _validation.positive_integer_tuple(
            dilation_rate, rank, "dilation_rate"
        ),
        "activation": _activation(activation),
    }
    _validation.strides_and_dilation(arguments["strides"], arguments["dilation_rate"])
    for name in FN_ARGUMENTS:
        fn = fns[name]
        if name in _REQUIRED_FNS:
            _validation.required_callable(fn, name)
        else:
            _validation.optional_callable(fn, name)
        if fn is not None:
            _validation.callable_taking(fn, name, FN_PARAMETERS[name])
        arguments[name] = fn
    return arguments


class ConvReparameterizationBase(keras.layers.Layer):
    """N-D convolution whose kernel and bias are drawn from learned distributions.

    Not for direct use: subclasses fix ``rank``. See ``Conv3DReparameterization``
    for the arguments.
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format="channels_last",
        dilation_rate=1,
        activation=None,
        activity_regularizer=None,
        kernel_posterior_fn=DEFAULT_FNS["kernel_posterior_fn"],
        kernel_posterior_tensor_fn=DEFAULT_FNS["kernel_posterior_tensor_fn"],
        kernel_prior_fn=DEFAULT_FNS["kernel_prior_fn"],
        kernel_divergence_fn=DEFAULT_FNS["kernel_divergence_fn"],
        bias_posterior_fn=DEFAULT_FNS["bias_posterior_fn"],
        bias_posterior_tensor_fn=DEFAULT_FNS["bias_posterior_tensor_fn"],
        bias_prior_fn=DEFAULT_FNS["bias_prior_fn"],
        bias_divergence_fn=DEFAULT_FNS["bias_divergence_fn"],
        **kwargs,
    ):
        # Everything is validated before Keras's constructor runs, so a bad
        # argument leaves no half-made layer (and no used-up layer name).
        seed = _validation.optional_seed(kwargs.pop("seed", None))
        arguments = normalize_arguments(
            rank,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            kernel_posterior_fn=kernel_posterior_fn,
            kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
            kernel_prior_fn=kernel_prior_fn,
            kernel_divergence_fn=kernel_divergence_fn,
            bias_posterior_fn=bias_posterior_fn,
            bias_posterior_tensor_fn=bias_posterior_tensor_fn,
            bias_prior_fn=bias_prior_fn,
            bias_divergence_fn=bias_divergence_fn,
        )
        if kwargs.get("dtype") is not None:
            _check_dtype_policy(kwargs["dtype"])
        super().__init__(activity_regularizer=_activity_regularizer(activity_regularizer), **kwargs)
        self.rank = rank
        for name, value in arguments.items():
            setattr(self, name, value)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)
        self._distributions = _Distributions()
        # The variables the fns create, by name. An attribute TensorFlow's
        # tracking sees: without it, tf.saved_model.save finds the variables
        # the distributions read but not who owns them, and refuses to export.
        self._fn_variables = {}
        self._placeholders = False
        self._native_channels_first = False
        self.seed = seed
        self._seed_generator = None if seed is None else keras.random.SeedGenerator(seed)

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

    @property
    def _channel_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"Layer `{self.name}` expects inputs of rank {self.rank + 2} "
                f"(batch, {self._spatial_description()}), but the input has rank "
                f"{len(input_shape)}. Received: input_shape={input_shape}"
            )
        input_channels = input_shape[self._channel_axis]
        if input_channels is None:
            raise ValueError(
                f"Layer `{self.name}` needs a known number of input channels "
                f"(axis {self._channel_axis} with data_format="
                f'"{self.data_format}"), but it is None. '
                f"Received: input_shape={input_shape}"
            )
        self._output_spatial_shape(input_shape)  # Validates the spatial sizes.

        dtype = tf.as_dtype(self.dtype)
        kernel_shape = self.kernel_size + (int(input_channels), self.filters)
        weights = math.prod(kernel_shape)
        if weights > _MAX_ELEMENTS:
            raise ValueError(
                f"Layer `{self.name}`: a kernel of shape {kernel_shape} has {weights} "
                f"weights, more than TensorFlow can index in one tensor ({_MAX_ELEMENTS}). "
                "Use fewer `filters` or a smaller `kernel_size`. "
                f"Received: filters={self.filters}, kernel_size={self.kernel_size}, "
                f"input channels={int(input_channels)}"
            )
        self._parameter_shapes = (dtype, kernel_shape, (self.filters,))
        self._make_distributions(self._add_variable)
        self.input_spec = keras.layers.InputSpec(
            ndim=self.rank + 2, axes={self._channel_axis: int(input_channels)}
        )
        # cuDNN runs channels-first natively; CPU kernels only channels-last.
        self._native_channels_first = bool(tf.config.list_logical_devices("GPU"))

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
                    setattr(distributions, role, distribution)
        self._distributions = distributions

    def _remake_distributions(self):
        """Make the distributions again, on variables that now exist.

        Keras builds some models symbolically first (a subclassed model, fit
        under a tf.distribute strategy), in a stateless scope where variables
        are placeholders until the scope ends. The distributions made then
        read placeholders; the first real call makes them again, handing each
        fn the variables it created the first time, in the same order.
        """
        if not all(isinstance(v.value, tf.Variable) for v in self._fn_variables.values()):
            return  # Still inside the stateless scope.
        created = iter(self._fn_variables.values())

        def existing_variable(name, shape, *args, **kwargs):
            del args, kwargs  # Initializers and the like applied the first time.
            variable = next(created, None)
            if variable is None or variable.name != name or tuple(variable.shape) != tuple(
                int(dim) for dim in shape
            ):
                raise RuntimeError(
                    f"Layer `{self.name}`: a posterior or prior fn, called again to read "
                    f"its variables, asked for a different variable ({name!r}, shape "
                    f"{tuple(shape)}) than the first time. Fns must create the same "
                    "variables each time they are called."
                )
            return variable.value

        self._make_distributions(existing_variable)
        self._placeholders = False

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
        """The ``add_variable_fn`` handed to posterior and prior fns.

        Returns the TensorFlow variable behind the Keras one: a TFP
        distribution given a Keras 3 variable would read its value once and
        never see training update it. In a stateless scope, where Keras has
        no TensorFlow variable yet, returns its initial value as a stand-in
        and marks the distributions to be made again (``_remake_distributions``).
        """
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
                # The layer casts the drawn kernel itself; the distributions
                # must read the variables in their own dtype.
                autocast=False,
            )
        except tf.errors.ResourceExhaustedError:
            size = math.prod(shape) * tf.as_dtype(dtype or self.dtype).size / 2**30
            raise ValueError(
                f"Layer `{self.name}` could not allocate variable {name!r} of shape "
                f"{shape} ({size:.1f} GiB): not enough memory. Use fewer `filters` or "
                f"a smaller `kernel_size`. Received: filters={self.filters}, "
                f"kernel_size={self.kernel_size}"
            ) from None
        key, count = name, 1
        while key in self._fn_variables:  # a fn may reuse a name; keep both
            key, count = f"{name}_{count}", count + 1
        self._fn_variables[key] = variable
        value = variable.value
        if not isinstance(value, tf.Variable):
            self._placeholders = True
            return tf.convert_to_tensor(value)
        return value

    def call(self, inputs):
        if self._placeholders:
            self._remake_distributions()
        try:
            with _defaults.sampling_seed(self._seed_generator):
                kernel = self.kernel_posterior_tensor_fn(self.kernel_posterior)
                bias = None
                if self.bias_posterior is not None:
                    bias = self.bias_posterior_tensor_fn(self.bias_posterior)
            outputs = self._convolve(inputs, tf.cast(kernel, inputs.dtype))
        except tf.errors.ResourceExhaustedError:
            raise ValueError(
                f"Layer `{self.name}` ran out of memory drawing its kernel or convolving "
                f"an input of shape {tuple(inputs.shape)}. Use fewer `filters`, a smaller "
                f"`kernel_size` or smaller batches. Received: filters={self.filters}, "
                f"kernel_size={self.kernel_size}"
            ) from None
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                f"Layer `{self.name}`: TensorFlow's convolution rejected an input of shape "
                f"{tuple(inputs.shape)} with these arguments ({_tf_message(error)}). "
                f"Received: strides={self.strides}, dilation_rate={self.dilation_rate}, "
                f'padding="{self.padding}", kernel_size={self.kernel_size}'
            ) from None
        if bias is not None:
            outputs = tf.nn.bias_add(
                outputs,
                tf.cast(bias, outputs.dtype),
                data_format="NC..." if self.data_format == "channels_first" else "N...C",
            )
        if self.activation is not None:
            outputs = self.activation(outputs)
        self._add_divergence(
            self.kernel_divergence_fn,
            self.kernel_posterior,
            self.kernel_prior,
            kernel,
            "divergence_kernel",
        )
        self._add_divergence(
            self.bias_divergence_fn,
            self.bias_posterior,
            self.bias_prior,
            bias,
            "divergence_bias",
        )
        return outputs

    def _convolve(self, inputs, kernel):
        channels_first = self.data_format == "channels_first"
        transpose = channels_first and not self._native_channels_first
        if transpose:
            inputs = tf.transpose(inputs, [0, *range(2, self.rank + 2), 1])
        layout = "NC" + _SPATIAL[self.rank] if channels_first and not transpose else (
            "N" + _SPATIAL[self.rank] + "C"
        )
        first_spatial = 1 if layout.endswith("C") else 2
        sizes = inputs.shape[first_spatial : first_spatial + self.rank]
        # A stride beyond the input's size gives one output position, exactly
        # as a stride equal to it does (same padding too); TF's CPU Conv3D
        # aborts the process on strides near 2**29, so use the smaller one.
        strides = tuple(
            stride if size is None else min(stride, max(int(size), 1))
            for stride, size in zip(self.strides, sizes)
        )
        if self.rank == 3 and all(d == 1 for d in self.dilation_rate):
            # tf.nn.convolution's eager gradient breaks on strided 5-D inputs
            # in TF 2.21; the Conv3D op with an explicit layout does not.
            strides = (1, *strides, 1) if layout.endswith("C") else (1, 1, *strides)
            outputs = tf.nn.conv3d(
                inputs, kernel, strides, self.padding.upper(), data_format=layout
            )
        else:
            # Strides are 1 here whenever dilation is not, and this path runs
            # dilation on CPUs whose Conv3D kernel lacks it.
            outputs = tf.nn.convolution(
                inputs,
                kernel,
                strides=strides,
                padding=self.padding.upper(),
                data_format=layout,
                dilations=self.dilation_rate,
            )
        # TF's CPU convolution returns the input's shape for an empty batch;
        # reshaping to the shape the convolution should have fixes that and is
        # free (no copy) otherwise.
        outputs = tf.reshape(outputs, self._output_shape_tensor(inputs, layout))
        if transpose:
            outputs = tf.transpose(outputs, [0, self.rank + 1, *range(1, self.rank + 1)])
        return outputs

    def _output_shape_tensor(self, inputs, layout):
        channels_last = layout.endswith("C")
        first_spatial = 1 if channels_last else 2
        static = inputs.shape[first_spatial : first_spatial + self.rank]
        if all(size is not None for size in static):
            # A constant shape (batch inferred): one cheap op on the hot path.
            batch, sizes = -1, static
        else:
            shape = tf.shape(inputs)
            batch, sizes = shape[0], [shape[first_spatial + axis] for axis in range(self.rank)]
        spatial = [
            _output_length(size, kernel, self.padding, stride, dilation)
            for size, kernel, stride, dilation in zip(
                sizes, self.kernel_size, self.strides, self.dilation_rate
            )
        ]
        if channels_last:
            return tf.stack([batch, *spatial, self.filters])
        return tf.stack([batch, self.filters, *spatial])

    def _add_divergence(self, divergence_fn, posterior, prior, posterior_tensor, name):
        if divergence_fn is None or posterior is None or prior is None:
            return
        divergence = divergence_fn(posterior, prior, posterior_tensor)
        self.add_loss(tf.identity(divergence, name=name))

    def _spatial_description(self):
        spatial = ("depth", "height", "width")[3 - self.rank :]
        dims = ", ".join(spatial)
        return f"channels, {dims}" if self.data_format == "channels_first" else (
            f"{dims}, channels"
        )

    def _output_spatial_shape(self, input_shape):
        if self.data_format == "channels_first":
            spatial = input_shape[2:]
        else:
            spatial = input_shape[1:-1]
        output = []
        for axis, size in enumerate(spatial):
            length = _output_length(
                size,
                self.kernel_size[axis],
                self.padding,
                self.strides[axis],
                self.dilation_rate[axis],
            )
            if length is not None and length < 1:
                dilated = (self.kernel_size[axis] - 1) * self.dilation_rate[axis] + 1
                raise ValueError(
                    f"Layer `{self.name}`: the kernel (size {dilated} along spatial "
                    f"axis {axis}, after dilation) is larger than the input ({size}) "
                    'with padding="valid", so the output would be empty. Use a '
                    'smaller `kernel_size` or `dilation_rate`, padding="same", or a '
                    f"larger input. Received: input_shape={tuple(input_shape)}, "
                    f"kernel_size={self.kernel_size}, "
                    f"dilation_rate={self.dilation_rate}"
                )
            output.append(length)
        return output

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        spatial = self._output_spatial_shape(input_shape)
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, *spatial)
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "seed": self.seed,
                "activation": keras.activations.serialize(self.activation)
                if self.activation is not None
                else None,
            }
        )
        for name in FN_ARGUMENTS:
            config[name] = _fn_serialization.serialize_fn(getattr(self, name), name)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in FN_ARGUMENTS:
            if name in config:
                config[name] = _fn_serialization.deserialize_fn(config[name], name)
        return cls(**config)


class _Distributions:
    """The four distributions, held outside Keras's and TF's attribute tracking.

    They reference the layer's variables, which Keras already tracks; letting
    TF's AutoTrackable adopt them too would give each variable a second path.
    """

    def __init__(self):
        self.kernel_posterior = None
        self.kernel_prior = None
        self.bias_posterior = None
        self.bias_prior = None


_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _output_length(size, kernel, padding, stride, dilation):
    """TFP's (and TensorFlow's) output length of one convolved axis."""
    if size is None:
        return None
    dilated = kernel + (kernel - 1) * (dilation - 1)
    length = size if padding == "same" else size - dilated + 1
    return (length + stride - 1) // stride


def _tf_message(error):
    """A TensorFlow op error's message without its op and device decorations."""
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message)
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", message, flags=re.S).strip()


def _check_dtype_policy(value):
    try:
        keras.dtype_policies.get(value)
    except (ValueError, TypeError) as error:
        raise type(error)(
            '`dtype` must be the name of a float dtype (such as "float32"), of a dtype policy '
            '(such as "mixed_bfloat16"), or a keras.DTypePolicy. '
            f'{_validation.received("dtype", value)}'
        ) from None


def _activity_regularizer(value):
    if value is None:
        return None
    if not isinstance(value, (str, dict, keras.regularizers.Regularizer)) and not callable(value):
        raise TypeError(
            "`activity_regularizer` must be a regularizer name, a Keras regularizer, a callable "
            f"or None. {_validation.received('activity_regularizer', value)}"
        )
    try:
        return keras.regularizers.get(value)
    except ValueError:
        raise ValueError(
            "`activity_regularizer` must be the name of a Keras regularizer (such as \"l1\", "
            "\"l2\" or \"l1_l2\"), a Keras regularizer, a callable or None. "
            f"{_validation.received('activity_regularizer', value)}"
        ) from None


def _activation(value):
    if value is None:
        return None
    if not isinstance(value, (str, dict)) and not callable(value):
        raise TypeError(
            "`activation` must be an activation name, a callable or None. "
            f"{_validation.received('activation', value)}"
        )
    try:
        return keras.activations.get(value)
    except ValueError:
        raise ValueError(
            "`activation` must be the name of a Keras activation (such as "
            '"relu", "sigmoid" or "softmax"), a callable or None. '
            f"{_validation.received('activation', value)}"
        ) from None
