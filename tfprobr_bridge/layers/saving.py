"""Saving refuses an unsavable fn before Keras opens the file.

Keras's ``save_model`` opens the ``.keras`` file for writing (emptying one that
was there) and only then asks each layer for its config. A layer holding a fn
that cannot be saved (an R function, an object Python cannot pickle) failed
there, leaving a 0-byte file, or an earlier good model destroyed. Keras has
no hook before it opens the file, so this package wraps its three entry
points (``keras.Model.save``, ``keras.saving.save_model`` and its alias
``keras.models.save_model``, which keras3's ``save_model()`` calls) with a
check of this package's layers alone; everything else about saving is Keras's.
"""

import functools

import keras

_WRAPPED = "__tfprobr_checks_fns__"


def check_savable(model):
    """Raise ``UnsavableFnError`` (naming the argument) if a layer of ``model`` holds a fn
    that cannot be saved; do nothing else."""
    for layer in _layers(model):
        if type(layer).__module__.startswith("tfprobr_bridge."):
            layer.get_config()


def _layers(model):
    """The layers whose configs Keras writes: ``model``'s, through nested models (not the
    models a layer builds for itself, such as DenseVariational's posterior, which its own
    config describes by its fn)."""
    found = [model]
    for layer in getattr(model, "layers", ()) if isinstance(model, keras.Model) else ():
        found.extend(_layers(layer))
    return found


def _checked(save):
    if getattr(save, _WRAPPED, False):
        return save

    @functools.wraps(save)
    def save_after_checking(model, *args, **kwargs):
        check_savable(model)
        return save(model, *args, **kwargs)

    setattr(save_after_checking, _WRAPPED, True)
    return save_after_checking


def install():
    """Wrap Keras's save entry points (idempotent)."""
    keras.Model.save = _checked(keras.Model.save)
    keras.saving.save_model = _checked(keras.saving.save_model)
    keras.models.save_model = _checked(keras.models.save_model)
