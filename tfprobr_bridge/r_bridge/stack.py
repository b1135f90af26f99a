"""``LayerStack``: an immutable, pipe-friendly list of Keras 3 layers."""

import keras

from tfprobr_bridge import validation


class LayerStack:
    """An immutable sequence of Keras 3 layers that becomes a model on demand.

    Every composition returns a new stack and leaves the old one as it was, so
    a stack can be shared, extended in two directions, and piped (``%>%`` or
    ``|>`` in R, ``|`` or ``.pipe()`` in Python). The layers themselves are
    shared, not copied: two models made from stacks that hold the same layer
    share its weights, as in Keras.

    Args:
        input_shape: Shape of one example, without the batch axis (e.g.
            ``(16, 16, 16, 1)``); None to leave the model unbuilt until data
            arrives.
        name: Name of the model made by :meth:`to_model`.

    Example:

    >>> import keras
    >>> from tfprobr_bridge import LayerStack, layer_conv_3d_reparameterization
    >>> stack = (
    ...     LayerStack(input_shape=(8, 8, 8, 1))
    ...     .pipe(layer_conv_3d_reparameterization, filters=4, kernel_size=3)
    ...     | keras.layers.GlobalAveragePooling3D()
    ... )
    >>> len(stack), stack.to_model().output_shape
    (2, (None, 4))
    """

    __slots__ = ("_input_shape", "_name", "_layers")

    def __init__(self, input_shape=None, name=None, *, layers=()):
        if input_shape is not None:
            input_shape = validation.shape(input_shape, "input_shape")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string or None. {validation.received('name', name)}")
        layers = tuple(layers)
        for layer in layers:
            _require_layer(layer, "layers")
        object.__setattr__(self, "_input_shape", input_shape)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_layers", layers)

    def __setattr__(self, name, value):
        raise AttributeError("LayerStack is immutable; `|` and `.pipe()` return new stacks.")

    @property
    def input_shape(self):
        return self._input_shape

    @property
    def name(self):
        return self._name

    @property
    def layers(self):
        return self._layers

    def _with_layers(self, layers):
        return LayerStack(self._input_shape, self._name, layers=layers)

    def __or__(self, other):
        """``stack | layer`` appends a layer; ``stack | stack`` appends its layers."""
        if isinstance(other, LayerStack):
            return self._with_layers(self._layers + other._layers)
        _require_layer(other, "layer")
        return self._with_layers(self._layers + (other,))

    def pipe(self, fn, *args, **kwargs):
        """Apply ``fn(self, *args, **kwargs)``.

        ``fn`` may return a stack (as ``layer_conv_3d_reparameterization``
        does when given one) or a Keras layer, which is appended; this lets
        layer classes themselves be piped: ``stack.pipe(keras.layers.Dense, 10)``
        appends ``Dense(10)``.
        """
        if not callable(fn):
            raise TypeError(f"`fn` must be callable. {validation.received('fn', fn)}")
        if isinstance(fn, type) and issubclass(fn, keras.layers.Layer):
            return self | fn(*args, **kwargs)
        result = fn(self, *args, **kwargs)
        if isinstance(result, LayerStack):
            return result
        if isinstance(result, keras.layers.Layer):
            return self | result
        raise TypeError(
            f"`fn` must return a LayerStack or a Keras 3 layer. "
            f"Received: fn={fn!r} returned {type(result).__name__}"
        )

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._with_layers(self._layers[index])
        return self._layers[index]

    def __call__(self, inputs, **kwargs):
        """Apply the layers in order, as a model would."""
        outputs = inputs
        for layer in self._layers:
            outputs = layer(outputs, **kwargs)
        return outputs

    def to_model(self):
        """A new ``keras.Sequential`` holding these layers."""
        layers = list(self._layers)
        if self._input_shape is not None:
            layers.insert(0, keras.Input(shape=self._input_shape))
        return keras.Sequential(layers, name=self._name)

    def __eq__(self, other):
        return (
            isinstance(other, LayerStack)
            and self._input_shape == other._input_shape
            and self._name == other._name
            and len(self._layers) == len(other._layers)
            and all(a is b for a, b in zip(self._layers, other._layers))
        )

    def __hash__(self):
        return hash((self._input_shape, self._name, tuple(map(id, self._layers))))

    def __repr__(self):
        header = f"LayerStack(input_shape={self._input_shape}, name={self._name!r})"
        if not self._layers:
            return header + " with no layers"
        lines = [f"{header} with {len(self._layers)} layer(s):"]
        lines += [
            f"  {index}: {_layer_summary(layer)}" for index, layer in enumerate(self._layers)
        ]
        return "\n".join(lines)


_DESCRIBED = ("filters", "kernel_size", "strides", "padding", "units", "rate", "pool_size")


def _layer_summary(layer):
    # Attributes, not get_config(): a config may have to pickle user fns.
    details = [
        f"{key}={getattr(layer, key)!r}"
        for key in _DESCRIBED
        if getattr(layer, key, None) is not None
    ]
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if activation not in (None, "linear"):
        details.append(f"activation={activation!r}")
    summary = f" ({', '.join(details)})" if details else ""
    return f"{type(layer).__name__} {layer.name!r}{summary}"


def _require_layer(value, name):
    if not isinstance(value, keras.layers.Layer):
        raise TypeError(
            f"`{name}` must be a Keras 3 layer (keras.layers.Layer). "
            f"{validation.received(name, value)}"
        )
