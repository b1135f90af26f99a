"""TFP's masked autoregressive network and transform, on Keras 3.

``AutoregressiveNetwork`` is MADE (Germain et al., 2015), TFP's
``tfb.AutoregressiveNetwork``: dense layers whose weights are masked so that
output ``i`` depends only on inputs ordered before ``i``; its output holds
``params`` numbers per input. ``AutoregressiveTransform`` is a distribution
layer: given a distribution (the output of another distribution layer), it
returns that distribution transformed by a masked autoregressive flow whose
shift and log scale the network gives (TFP's ``tfpl.AutoregressiveTransform``).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge import validation
from tfprobr_bridge.layers.distribution import DistributionLambda
from tfprobr_bridge.layers.distribution import _deserialize_layer
from tfprobr_bridge.layers.distribution import distribution_of
from tfprobr_bridge.layers.distribution import keras_kwargs
from tfprobr_bridge.layers.distribution import keras_object

tfb = tfp.bijectors
tfd = tfp.distributions
_register = keras.saving.register_keras_serializable(package="tfprobr_bridge")


def _as_list(value, name):
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    return [validation.positive_integer(item, name) for item in items]


@_register
class AutoregressiveNetwork(keras.layers.Layer):
    """Masked autoencoder for distribution estimation (MADE), TFP's signature.

    Args:
        params: Numbers out per input (2 for a shift and a log scale).
        event_shape: The input's event size (an integer or a list of one);
            None to take it from the first call.
        conditional, conditional_event_shape, conditional_input_layers: A
            conditional network (an extra input, to "first_layer" or
            "all_layers").
        hidden_units: The hidden layers' sizes.
        input_order: "left-to-right", "right-to-left", "random", or a permutation
            of 1..event size.
        hidden_degrees: "equal" or "random".
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint:
            as Keras's Dense.
        validate_args: Unused (TFP's signature).
    """

    def __init__(self, params, event_shape=None, conditional=False,
                 conditional_event_shape=None, conditional_input_layers="all_layers",
                 hidden_units=None, input_order="left-to-right", hidden_degrees="equal",
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, validate_args=False, **kwargs):
        params = validation.positive_integer(params, "params")
        event_shape = _as_list(event_shape, "event_shape")
        if event_shape is not None and len(event_shape) != 1:
            raise ValueError("Parameter `event_shape` must describe a rank-1 shape (the event "
                             f"size). {validation.received('event_shape', event_shape)}")
        conditional = validation.boolean(conditional, "conditional")
        conditional_event_shape = _as_list(conditional_event_shape, "conditional_event_shape")
        # TFP's messages, in Keras's form.
        if conditional:
            if event_shape is None:
                raise ValueError("`event_shape` must be provided when `conditional` is True. "
                                 "Received: event_shape=None")
            if conditional_event_shape is None:
                raise ValueError("`conditional_event_shape` must be provided when `conditional` "
                                 "is True. Received: conditional_event_shape=None")
            if len(conditional_event_shape) != 1:
                raise ValueError(
                    "Parameter `conditional_event_shape` must describe a rank-1 shape (the "
                    "conditional input's size). "
                    f"{validation.received('conditional_event_shape', conditional_event_shape)}")
        elif conditional_event_shape is not None:
            received = validation.received("conditional_event_shape", conditional_event_shape)
            raise ValueError("`conditional_event_shape` passed but `conditional` is set to False. "
                             f"{received}")
        if not isinstance(conditional_input_layers, str) or conditional_input_layers not in (
                "first_layer", "all_layers"):
            raise ValueError('`conditional_input_layers` must be "first_layer" or '
                             f'"all_layers". Received: conditional_input_layers='
                             f"{conditional_input_layers!r}")
        input_order = _input_order_argument(input_order, event_shape)
        if not isinstance(hidden_degrees, str) or hidden_degrees not in ("equal", "random"):
            raise ValueError('`hidden_degrees` must be "equal" or "random". '
                             f"{validation.received('hidden_degrees', hidden_degrees)}")
        hidden_units = _as_list(hidden_units, "hidden_units") or []
        activation = validation.activation(activation)
        use_bias = validation.boolean(use_bias, "use_bias")
        validate_args = validation.boolean(validate_args, "validate_args")
        initializer = 'a Keras initializer, its name (such as "zeros") or a callable'
        regularizer = 'a Keras regularizer, its name (such as "l2"), a callable or None'
        constraint = 'a Keras constraint, its name (such as "non_neg"), a callable or None'
        objects = {
            "kernel_initializer": keras_object(keras.initializers.get, kernel_initializer,
                                               "kernel_initializer", initializer),
            "bias_initializer": keras_object(keras.initializers.get, bias_initializer,
                                             "bias_initializer", initializer),
            "kernel_regularizer": keras_object(keras.regularizers.get, kernel_regularizer,
                                               "kernel_regularizer", regularizer),
            "bias_regularizer": keras_object(keras.regularizers.get, bias_regularizer,
                                             "bias_regularizer", regularizer),
            "kernel_constraint": keras_object(keras.constraints.get, kernel_constraint,
                                              "kernel_constraint", constraint),
            "bias_constraint": keras_object(keras.constraints.get, bias_constraint,
                                            "bias_constraint", constraint),
        }
        super().__init__(**keras_kwargs(self, kwargs, distribution_layer=False))
        self._params = params
        self._event_shape = event_shape
        self._event_size = event_shape[-1] if event_shape is not None else None
        self._conditional = conditional
        self._conditional_event_shape = conditional_event_shape
        self._conditional_input_layers = conditional_input_layers
        self._hidden_units = hidden_units
        self._input_order_param = input_order
        self._hidden_degrees = hidden_degrees
        self._activation = activation
        self._use_bias = use_bias
        self._kernel_initializer = objects["kernel_initializer"]
        self._bias_initializer = objects["bias_initializer"]
        self._kernel_regularizer = objects["kernel_regularizer"]
        self._bias_regularizer = objects["bias_regularizer"]
        self._kernel_constraint = objects["kernel_constraint"]
        self._bias_constraint = objects["bias_constraint"]
        self._validate_args = validate_args
        self._config = {
            "params": params, "event_shape": event_shape, "conditional": conditional,
            "conditional_event_shape": conditional_event_shape,
            "conditional_input_layers": conditional_input_layers,
            "hidden_units": self._hidden_units, "input_order": self._input_order_param,
            "hidden_degrees": hidden_degrees, "use_bias": self._use_bias,
            "validate_args": validate_args,
        }

    @property
    def event_shape(self):
        return self._event_shape

    @property
    def params(self):
        return self._params

    def build(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
                input_shape[0], (list, tuple)):
            input_shape = input_shape[0]
        size = input_shape[-1] if input_shape else None
        if self._event_size is None:
            if size is None:
                raise ValueError("The event size is unknown: pass `event_shape`, or call the "
                                 "network on inputs whose last axis is known.")
            self._event_size = int(size)
            self._event_shape = [self._event_size]
        elif size is not None and int(size) != self._event_size:
            raise ValueError(f"`event_shape` is {self._event_shape}, but the inputs' last axis "
                             f"is {size}. Received: input_shape={tuple(input_shape)}")
        order = _input_order(self._event_size, self._input_order_param)
        self._input_order = order
        self._masks = _masks(self._params, self._event_size, self._hidden_units, order,
                             self._hidden_degrees)
        sizes = self._hidden_units + [self._event_size * self._params]
        self._kernels, self._biases, self._conditional_kernels = [], [], []
        previous = self._event_size
        for index, (size, mask) in enumerate(zip(sizes, self._masks)):
            # The mask stays a NumPy array: a tensor made here (perhaps inside a traced
            # function) could not be used by the constraint in another one.
            self._kernels.append(self.add_weight(
                name=f"kernel_{index}", shape=(previous, size),
                initializer=_masked_initializer(mask, self._kernel_initializer),
                regularizer=self._kernel_regularizer,
                constraint=_masked_constraint(mask, self._kernel_constraint)))
            self._biases.append(self.add_weight(
                name=f"bias_{index}", shape=(size,), initializer=self._bias_initializer,
                regularizer=self._bias_regularizer, constraint=self._bias_constraint)
                if self._use_bias else None)
            if self._conditional and (self._conditional_input_layers == "all_layers"
                                      or index == 0):
                self._conditional_kernels.append(self.add_weight(
                    name=f"conditional_kernel_{index}",
                    shape=(self._conditional_event_shape[0], size),
                    initializer=self._kernel_initializer,
                    regularizer=self._kernel_regularizer))
            else:
                self._conditional_kernels.append(None)
            previous = size
        self.built = True

    def call(self, x, conditional_input=None):
        x = tf.convert_to_tensor(x, dtype=self.compute_dtype)
        # TFP's output shape: the input's, its batch broadcast with the conditional input's.
        output_shape = tf.shape(x)
        if x.shape.rank == 1:
            x = x[tf.newaxis, ...]
        if self._conditional:
            if conditional_input is None:
                raise ValueError("`conditional_input` must be passed as a named argument: the "
                                 "network is conditional. Received: conditional_input=None")
            conditional_input = tf.convert_to_tensor(conditional_input, dtype=self.compute_dtype)
            output_shape = tf.concat([
                tf.broadcast_dynamic_shape(tf.shape(conditional_input)[:-1], output_shape[:-1]),
                output_shape[-1:]], axis=0)
            if conditional_input.shape.rank == 1:
                conditional_input = conditional_input[tf.newaxis, ...]
            batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], tf.shape(conditional_input)[:-1])
            x = tf.broadcast_to(x, tf.concat([batch, tf.shape(x)[-1:]], 0))
            conditional_input = tf.broadcast_to(
                conditional_input, tf.concat([batch, tf.shape(conditional_input)[-1:]], 0))
        outputs = x
        last = len(self._kernels) - 1
        for index, kernel in enumerate(self._kernels):
            outputs = tf.matmul(outputs, tf.convert_to_tensor(kernel) *
                                tf.cast(self._masks[index], outputs.dtype))
            if self._conditional_kernels[index] is not None:
                outputs = outputs + tf.matmul(conditional_input, self._conditional_kernels[index])
            if self._biases[index] is not None:
                outputs = outputs + self._biases[index]
            if index < last and self._activation is not None:
                outputs = self._activation(outputs)
        return tf.reshape(outputs, tf.concat([output_shape, [self._params]], axis=0))

    def compute_output_shape(self, x_shape, conditional_input_shape=None):
        if conditional_input_shape is None or len(x_shape) == 0:
            return (*x_shape, self._params)
        # TFP's: the input's shape, its batch broadcast with the conditional input's.
        batch = tuple(np.broadcast_shapes(
            tuple(1 if d is None else d for d in conditional_input_shape[:-1]),
            tuple(1 if d is None else d for d in x_shape[:-1])))
        unknown = len(batch) - len(x_shape[:-1])
        batch = tuple(None if (i >= unknown and x_shape[i - unknown] is None) else d
                      for i, d in enumerate(batch))
        return (*batch, x_shape[-1], self._params)

    def get_config(self):
        config = super().get_config()
        config.update(self._config)
        config.update({
            "activation": keras.activations.serialize(self._activation)
            if self._activation is not None else None,
            "kernel_initializer": keras.initializers.serialize(self._kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self._bias_initializer),
        })
        for name in ("kernel_regularizer", "bias_regularizer", "kernel_constraint",
                     "bias_constraint"):
            value = getattr(self, f"_{name}")
            config[name] = (keras.saving.serialize_keras_object(value)
                            if value is not None else None)
        return config


def _input_order_argument(value, event_shape):
    """``input_order``: a name, or a permutation of 1..event size (checked against the event
    size when it is known)."""
    if isinstance(value, str):
        if value not in ("left-to-right", "right-to-left", "random"):
            raise ValueError('`input_order` must be "left-to-right", "right-to-left", "random" '
                             f"or a permutation. {validation.received('input_order', value)}")
        return value
    items = value.tolist() if isinstance(value, np.ndarray) and value.ndim == 1 else value
    if not isinstance(items, (list, tuple)) or any(
            validation._as_integer(item) is None for item in items):
        raise TypeError('`input_order` must be "left-to-right", "right-to-left", "random" or a '
                        "permutation of 1..event size. "
                        f"{validation.received('input_order', value)}")
    order = [validation._as_integer(item) for item in items]
    if event_shape is not None:
        _input_order(event_shape[-1], order)
    return order


def _input_order(size, order):
    if isinstance(order, str):
        if order == "left-to-right":
            return np.arange(1, size + 1)
        if order == "right-to-left":
            return np.arange(size, 0, -1)
        return np.random.permutation(np.arange(1, size + 1))
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(1, size + 1)):
        raise ValueError(f"`input_order` must be a permutation of 1..{size}. "
                         f"Received: input_order={order.tolist()}")
    return order


def _masks(params, size, hidden_units, input_order, hidden_degrees):
    """TFP's MADE masks: hidden layers by degree, the output tiled per parameter."""
    degrees = [input_order]
    for units in hidden_units:
        low = min(int(np.min(degrees[-1])), size - 1)
        if hidden_degrees == "random":
            degrees.append(np.random.randint(low=low, high=size, size=units))
        else:
            degrees.append(np.maximum(low, np.ceil(np.arange(1, units + 1) * (size - 1)
                                                   / float(units + 1)).astype(np.int32)))
    masks = [(previous[:, np.newaxis] <= current).astype(np.float32)
             for previous, current in zip(degrees[:-1], degrees[1:])]
    output = (degrees[-1][:, np.newaxis] < degrees[0]).astype(np.float32)
    output = np.reshape(np.tile(output[..., np.newaxis], [1, 1, params]),
                        [output.shape[0], size * params])
    return masks + [output]


def _masked_initializer(mask, initializer):
    def initialize(shape, dtype=None):
        return initializer(shape, dtype=dtype) * tf.cast(mask, dtype or "float32")
    return initialize


def _masked_constraint(mask, constraint):
    def constrain(x):
        x = constraint(x) if constraint is not None else x
        return x * tf.cast(mask, x.dtype)
    return constrain


@_register
class AutoregressiveTransform(DistributionLambda):
    """A distribution transformed by a masked autoregressive flow (TFP's layer).

    Its input is a distribution (the output of a distribution layer, such as
    ``DistributionLambda(lambda t: tfd.MultivariateNormalDiag(...))``); its output
    is ``TransformedDistribution(input, MaskedAutoregressiveFlow(made))``, with the
    shift and log scale from ``made``, an ``AutoregressiveNetwork`` of
    ``params=2``.
    """

    def __init__(self, made, **kwargs):
        if isinstance(made, dict):
            made = _deserialize_layer(made, "made")
        if not isinstance(made, AutoregressiveNetwork):
            raise TypeError(
                "`made` must be an AutoregressiveNetwork with params=2 (a shift and a log "
                f"scale per input). Received: made={made!r}")
        if made.params != 2:  # TFP's check
            raise ValueError(
                "Argument `made` must output 2 parameters per input (a shift and a log "
                f"scale), found {made.params}. Received: made={made!r}")
        kwargs.pop("make_distribution_fn", None)
        super().__init__(self._transform, **kwargs)
        self._made = made

    def build(self, input_shape):
        if not self._made.built:
            self._made.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        # The transformed distribution has its input's shape; Keras asks before any
        # distribution exists (a symbolic call), so it is said here.
        return input_shape

    def _transform(self, inputs):
        distribution = distribution_of(inputs)
        if distribution is None:
            raise TypeError("AutoregressiveTransform's input must be a distribution: the output "
                            "of a distribution layer.")
        made = self._made

        def shift_and_log_scale(x):
            # In the flow's dtype: the network may compute in another (a mixed policy's).
            return tf.unstack(tf.cast(made(x), x.dtype), axis=-1)

        return tfd.TransformedDistribution(
            distribution=distribution,
            bijector=tfb.MaskedAutoregressiveFlow(shift_and_log_scale),
        )

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config["made"] = keras.layers.serialize(self._made)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
