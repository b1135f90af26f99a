"""Argument normalisers shared by the layer classes and the R-shaped factory.

They accept values as both Python users and reticulate deliver them: R has no
scalar integers in practice, so ``2`` arrives as ``2.0``; R vectors arrive as
lists or 1-d numpy arrays. Each normaliser returns a canonical Python value or
raises an error in Keras's form: the argument in backticks, what was expected,
and ``Received: name=value``.
"""

import difflib
import inspect
import math
import numbers

import keras
import numpy as np


# TensorFlow takes sizes, strides and dilations as 32-bit integers.
MAX_INTEGER = 2**31 - 1


def received(name, value):
    """The ``Received: name=value`` tail of every error message."""
    return f"Received: {name}={value!r}"


def short_repr(value, limit=80):
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _as_integer(value):
    """Return ``value`` as an ``int`` if it is an integral real number, else None."""
    if _is_bool(value):
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isfinite(value) and value.is_integer():
            return int(value)
    return None


def _as_sequence(value):
    """Return ``value`` as a list if it is a list, tuple or 1-d array, else None."""
    if isinstance(value, np.ndarray):
        return list(value) if value.ndim == 1 else None
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


def positive_integer(value, name):
    """An integer >= 1, given as int, integral float or numpy scalar."""
    integer = _as_integer(value)
    if integer is None or not 1 <= integer <= MAX_INTEGER:
        raise _integer_error(value, name, "a positive integer")
    return integer


def positive_number(value, name):
    """A finite real number > 0, given as int, float or numpy scalar."""
    if not _is_number(value):
        raise TypeError(f"`{name}` must be a positive number. {received(name, value)}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"`{name}` must be a positive number. {received(name, value)}")
    return number


def _integer_error(value, name, expected):
    error_type = ValueError if _is_number(value) else TypeError
    limit = ""
    integer = _as_integer(value)
    if integer is not None and integer > MAX_INTEGER:
        limit = f" no larger than {MAX_INTEGER}"
    return error_type(f"`{name}` must be {expected}{limit}. {received(name, value)}")


def _is_number(value):
    if _is_bool(value):
        return False
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and np.issubdtype(value.dtype, np.number)
    return isinstance(value, numbers.Real)


def positive_integer_tuple_expected(rank):
    """What ``positive_integer_tuple`` accepts, in the words of its errors."""
    if rank > 1:
        return f"a positive integer or a list of 1 or {rank} positive integers"
    return "a positive integer or a list of 1 positive integer"


def positive_integer_tuple(value, rank, name):
    """A tuple of ``rank`` integers >= 1, from a scalar or a sequence of 1 or ``rank``."""
    expected = positive_integer_tuple_expected(rank)
    items = _as_sequence(value)
    if items is None:
        items = [value]
    if len(items) not in (1, rank):
        raise ValueError(
            f"`{name}` must be {expected}, but has length {len(items)}. "
            f"{received(name, value)}"
        )
    integers = [_as_integer(item) for item in items]
    if any(integer is None or not 1 <= integer <= MAX_INTEGER for integer in integers):
        error_type = (
            ValueError if all(_is_number(item) for item in items) else TypeError
        )
        if any(integer is not None and integer > MAX_INTEGER for integer in integers):
            expected += f", each no larger than {MAX_INTEGER}"
        raise error_type(f"`{name}` must be {expected}. {received(name, value)}")
    if len(integers) == 1:
        integers = integers * rank
    return tuple(integers)


def padding(value):
    """``"valid"`` or ``"same"``, in any case."""
    if not isinstance(value, str):
        raise TypeError(
            f'`padding` must be one of "valid" or "same". {received("padding", value)}'
        )
    normalized = value.lower()
    if normalized not in ("valid", "same"):
        hint = (
            ' ("causal" padding is not offered by the variational layers)'
            if normalized == "causal"
            else ""
        )
        raise ValueError(
            f'`padding` must be one of "valid" or "same"{hint}. '
            f'{received("padding", value)}'
        )
    return normalized


def data_format(value):
    """``"channels_last"`` or ``"channels_first"``, in any case."""
    if not isinstance(value, str) or value.lower() not in (
        "channels_last",
        "channels_first",
    ):
        error_type = ValueError if isinstance(value, str) else TypeError
        raise error_type(
            '`data_format` must be one of "channels_last" or "channels_first". '
            f'{received("data_format", value)}'
        )
    return value.lower()


def strides_and_dilation(strides, dilation_rate):
    """TensorFlow cannot combine strides > 1 with dilation > 1."""
    if any(s > 1 for s in strides) and any(d > 1 for d in dilation_rate):
        raise ValueError(
            "`strides` > 1 cannot be combined with `dilation_rate` > 1: "
            "set one of them to 1. "
            f"Received: strides={strides}, dilation_rate={dilation_rate}"
        )


def optional_callable(value, name):
    """A callable or None (R's NULL)."""
    if value is not None and not callable(value):
        raise TypeError(
            f"`{name}` must be a function (a callable) or None. "
            f"{received(name, value)}"
        )
    return value


def required_callable(value, name):
    """A callable; None is not allowed."""
    if not callable(value):
        raise TypeError(f"`{name}` must be a function (a callable). {received(name, value)}")
    return value


def callable_taking(value, name, parameters):
    """Refuse a callable that cannot be called with ``len(parameters)`` positional arguments.

    Callables whose signature Python cannot read (some builtins, foreign
    wrappers) are accepted; they fail, if at all, when first called.
    """
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return value
    try:
        signature.bind(*parameters)
    except TypeError:
        received_text = f"{getattr(value, '__name__', type(value).__name__)}{signature}"
        raise TypeError(arity_message(name, parameters, received_text)) from None
    return value


def arity_message(name, parameters, received_text):
    """The error for a fn that cannot be called with ``parameters`` (Python's or R's)."""
    expected = ", ".join(parameters)
    return (
        f"`{name}` must be a function of {len(parameters)} argument"
        f"{'s' if len(parameters) > 1 else ''} ({expected}), as the layer calls it. "
        f"Received: {name}={received_text}"
    )


def boolean(value, name):
    """``True`` or ``False`` (numpy and length-1 R logicals included)."""
    items = _as_sequence(value)
    if items is not None and len(items) == 1:
        value = items[0]
    if not _is_bool(value):
        raise TypeError(f"`{name}` must be True or False. {received(name, value)}")
    return bool(value)


def shape(value, name):
    """A shape tuple: positive integers or None, from a list, tuple or 1-d array."""
    items = _as_sequence(value)
    if items is None:
        integer = _as_integer(value)
        items = [value] if integer is not None else None
    if items is None:
        raise TypeError(
            f"`{name}` must be a list of positive integers (None for an unknown "
            f"size). {received(name, value)}"
        )
    dims = []
    for item in items:
        if item is None:
            dims.append(None)
            continue
        integer = _as_integer(item)
        if integer is None or not 1 <= integer <= MAX_INTEGER:
            raise ValueError(
                f"`{name}` must be a list of positive integers (None for an "
                f"unknown size). {received(name, value)}"
            )
        dims.append(integer)
    return tuple(dims)


def sample_shape(value, name="sample_shape"):
    """A sample shape: () for one draw, or positive integers (one, or a list of them)."""
    items = _as_sequence(value)
    if items is None:
        items = [value]
    integers = [_as_integer(item) for item in items]
    if any(integer is None or not 1 <= integer <= MAX_INTEGER for integer in integers):
        error_type = ValueError if all(_is_number(item) for item in items) else TypeError
        raise error_type(
            f"`{name}` must be a list of positive integers (empty for one draw). "
            f"{received(name, value)}"
        )
    return tuple(integers)


def optional_seed(value, name="seed"):
    """None, or an integer seed from 0 to MAX_INTEGER."""
    if value is None:
        return None
    integer = None if isinstance(value, str) else _as_integer(value)
    if integer is None or not 0 <= integer <= MAX_INTEGER:
        raise ValueError(
            f"`{name}` must be None or an integer from 0 to {MAX_INTEGER}. "
            f"{received(name, value)}"
        )
    return integer


def known_arguments(arguments, known):
    """Refuse an argument name that is not in ``known``, suggesting the one it likely misspells."""
    for name in arguments:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = (f"did you mean `{close[0]}`?" if close
                else "the arguments are " + ", ".join(f"`{k}`" for k in known) + ".")
        raise TypeError(
            f"Unknown argument `{name}`: {hint} {received(name, arguments[name])}"
        )


def dtype_policy(value):
    """A Keras dtype or dtype policy name, or a DTypePolicy."""
    try:
        keras.dtype_policies.get(value)
    except (ValueError, TypeError) as error:
        raise type(error)(
            '`dtype` must be the name of a float dtype (such as "float32"), of a dtype policy '
            '(such as "mixed_bfloat16"), or a keras.DTypePolicy. '
            f"{received('dtype', value)}"
        ) from None


def activity_regularizer(value):
    """None, a regularizer name, a Keras regularizer or a callable."""
    if value is None:
        return None
    if not isinstance(value, (str, dict, keras.regularizers.Regularizer)) and not callable(value):
        raise TypeError(
            "`activity_regularizer` must be a regularizer name, a Keras regularizer, a callable "
            f"or None. {received('activity_regularizer', value)}"
        )
    try:
        return keras.regularizers.get(value)
    except ValueError:
        raise ValueError(
            "`activity_regularizer` must be the name of a Keras regularizer (such as \"l1\", "
            "\"l2\" or \"l1_l2\"), a Keras regularizer, a callable or None. "
            f"{received('activity_regularizer', value)}"
        ) from None


def activation(value):
    """None, an activation name, or a callable."""
    if value is None:
        return None
    if not isinstance(value, (str, dict)) and not callable(value):
        raise TypeError(
            "`activation` must be an activation name, a callable or None. "
            f"{received('activation', value)}"
        )
    try:
        return keras.activations.get(value)
    except ValueError:
        raise ValueError(
            "`activation` must be the name of a Keras activation (such as "
            '"relu", "sigmoid" or "softmax"), a callable or None. '
            f"{received('activation', value)}"
        ) from None
