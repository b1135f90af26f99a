"""The variables a layer's posterior and prior fns create, and the distributions made again on them.

Keras 3 builds some models symbolically first (a subclassed model; ``fit``
under a ``tf.distribute`` strategy), in a stateless scope where a new Keras
variable has no TensorFlow variable behind it yet, only its initial value.
The distributions the fns make then read those stand-ins and would never
see training. ``FnVariables`` records every variable the fns create, says
when a stand-in was handed out, and, once the scope is over, replays the
same variables, in order, to the fns called again, so the distributions are
made anew on the real ones.
"""

import tensorflow as tf


class FnVariables(tf.__internal__.tracking.AutoTrackable):
    """The variables a layer's fns created, by name, in creation order.

    Trackable: held by the layer, it lets ``tf.saved_model.save`` find who owns
    the variables the distributions read (otherwise it refuses to export).
    """

    def __init__(self):
        super().__init__()
        self.variables = {}
        self.stand_ins = False

    def record(self, name, variable):
        """Keep the Keras ``variable``; return what a distribution should read.

        That is the TensorFlow variable behind it (a TFP distribution given a
        Keras 3 variable would read its value once and never see it trained),
        or, in a stateless scope where there is none yet, its initial value,
        noted so that ``ready`` and ``replay`` make the distributions again.
        """
        key, count = name, 1
        while key in self.variables:  # a fn may reuse a name; keep both
            key, count = f"{name}_{count}", count + 1
        self.variables[key] = variable
        value = variable.value
        if isinstance(value, tf.Variable):
            return value
        self.stand_ins = True
        return tf.convert_to_tensor(value)

    def ready(self):
        """Whether every recorded variable now has its TensorFlow variable."""
        return all(isinstance(v.value, tf.Variable) for v in self.variables.values())

    def replay(self, layer_name):
        """An ``add_variable_fn`` that hands the fns back their variables, in order.

        Initializers and the like were applied the first time. A fn that asks
        for a different variable than it did then is an error: fns must create
        the same variables each time they are called.
        """
        created = iter(list(self.variables.values()))
        self.stand_ins = False

        def existing_variable(name, shape, *args, **kwargs):
            del args, kwargs
            variable = next(created, None)
            if variable is None or variable.name != name or tuple(variable.shape) != tuple(
                int(dim) for dim in shape
            ):
                raise RuntimeError(
                    f"Layer `{layer_name}`: a posterior or prior fn, called again to read "
                    f"its variables, asked for a different variable ({name!r}, shape "
                    f"{tuple(shape)}) than the first time. Fns must create the same "
                    "variables each time they are called."
                )
            return variable.value

        return existing_variable
