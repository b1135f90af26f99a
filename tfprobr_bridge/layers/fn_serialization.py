"""Saving the layer's eight fn arguments, which may be anything callable.

Registered Keras objects (this package's defaults, or a user's own registered
function or class) are saved as Keras saves any object and load anywhere.
Everything else (lambdas, closures, TFP's own default closures, functions of
a user's module) is pickled by value with cloudpickle, so it is never dropped.
Unpickling can run arbitrary code, so loading such a fn is refused unless the
user has turned Keras's safe mode off, exactly as Keras treats a saved lambda.
"""

import base64
import re
import types
import warnings

import cloudpickle
import keras

_PICKLED = "__tfprobr_pickled_function__"


class UnsavableFnError(TypeError):
    """A layer's fn argument cannot be saved with its model (an R function, an unpicklable object).

    Saving checks for it before Keras opens the file (see ``saving``), so a
    failed save leaves no empty file behind. In R it is the error class
    ``tfprobr_type_error``.
    """


UnsavableFnError.__module__ = "tfprobr_bridge"


def _is_registered(fn):
    target = fn if isinstance(fn, (types.FunctionType, type)) else type(fn)
    name = keras.saving.get_registered_name(target)
    return keras.saving.get_registered_object(name) is target


def serialize_fn(fn, name):
    """A JSON-able config for the fn argument ``name``, or None for None."""
    if fn is None:
        return None
    if _is_registered(fn):
        return keras.saving.serialize_keras_object(fn)
    hint = getattr(fn, "save_hint", None)
    if hint is not None:  # A fn that can never be saved says what to use instead.
        raise UnsavableFnError(f"`{name}` cannot be saved: {fn!r}. {hint}")
    try:
        payload = cloudpickle.dumps(fn)
    except Exception as error:  # cloudpickle raises many types; all mean "cannot".
        raise UnsavableFnError(
            f"`{name}` cannot be saved: {fn!r} could not be serialised "
            f"({type(error).__name__}: {error}). Use a fn that Python can pickle "
            "(a module-level function, a lambda or a closure over picklable "
            "values) or register it with `keras.saving.register_keras_serializable`."
        ) from None
    return {
        "class_name": _PICKLED,
        "config": {
            "pickle": base64.b64encode(payload).decode("ascii"),
            "repr": fn_repr(fn),
        },
    }


def fn_repr(fn):
    """A stable description for error messages: no memory address, so a
    config is the same after a save/load round trip."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(fn))


def deserialize_fn(config, name):
    """The inverse of :func:`serialize_fn`; refuses pickles in safe mode."""
    if config is None:
        return None
    if isinstance(config, dict) and config.get("class_name") == _PICKLED:
        if not _unsafe_deserialization_allowed():
            raise ValueError(
                f"`{name}` was saved as Python bytecode "
                f"({config['config'].get('repr', 'a pickled function')}). Loading it "
                "can run arbitrary code, so it is disallowed by default. If you trust "
                "the file, pass `safe_mode=False` to the loading function or call "
                "`keras.config.enable_unsafe_deserialization()`."
            )
        return cloudpickle.loads(base64.b64decode(config["config"]["pickle"]))
    return keras.saving.deserialize_keras_object(config)


def _unsafe_deserialization_allowed():
    # Keras's public API does not expose whether safe mode is on, but it does
    # enforce it when loading a lambda: ask it with a harmless one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = keras.saving.serialize_keras_object(lambda: None)
    try:
        keras.saving.deserialize_keras_object(probe)
    except ValueError:
        return False
    return True
