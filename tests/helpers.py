"""Helpers shared by the test modules."""

import numpy as np


def volumes(rng, shape, dtype="float32"):
    """Random volumes of ``shape``."""
    return rng.standard_normal(shape).astype(dtype)


def fixed_tensor_fn(distribution):
    """A deterministic tensor fn: the posterior's mean."""
    return distribution.mean()


def assign_by_name(source_variables, target_variables):
    """Copy values from one set of variables to another, matched by short name."""
    def short(variable):
        return variable.name.split("/")[-1].split(":")[0]

    targets = {short(v): v for v in target_variables}
    for variable in source_variables:
        targets[short(variable)].assign(np.asarray(variable))
    return sorted(targets)
