"""What the R package asks Python for, so that each fact has one owner.

R can read an R function's formals, which Python cannot; Python owns the
protocol (which fn gets which arguments) and the words of the error. So R
hands over what it reads, and Python judges.
"""

from tfprobr_bridge import validation
from tfprobr_bridge.layers.base import FN_PARAMETERS

# The fns of the other layers (distribution layers, DenseVariational, the
# Gaussian process), by the arguments the layer passes.
OTHER_FN_PARAMETERS = {
    "make_distribution_fn": ("inputs",),
    "convert_to_tensor_fn": ("distribution",),
    "test_points_fn": ("distribution",),
    "make_posterior_fn": ("kernel_size", "bias_size", "dtype"),
    "make_prior_fn": ("kernel_size", "bias_size", "dtype"),
    "mean_fn": ("index_points",),
}


def check_r_function(name, required, total, dots, received):
    """Refuse an R function given as the fn argument ``name`` that cannot take the
    arguments the layer passes it (``FN_PARAMETERS``): ``required`` of its formals
    have no default, it has ``total`` formals, ``dots`` says whether one is ``...``.

    ``received`` is the function as R prints it, for the message.
    """
    parameters = {**FN_PARAMETERS, **OTHER_FN_PARAMETERS}[name]
    count = len(parameters)
    if dots or (int(required) <= count <= int(total)):
        return None
    raise TypeError(validation.arity_message(name, parameters, received))
