"""The module paths of the flat layout (before layers/, uncertainty/ and r_bridge/).

A saved ``.keras`` file names this package's classes by their registered names
(``tfprobr_bridge>Conv3DReparameterization``), which did not change. But a
user's fn saved by value (a lambda, a closure) is a pickle, and a pickle names
the objects it refers to by module path: a closure over a ``MeanFieldNormal``
saved then says ``tfprobr_bridge._defaults.MeanFieldNormal``. Each old path
is registered here as an alias of the module that now holds its objects.
"""

import importlib
import sys

_OLD_PATHS = {
    "_variational": "tfprobr_bridge.layers.base",
    "_estimators": "tfprobr_bridge.layers.estimators",
    "_conv": "tfprobr_bridge.layers.conv",
    "_dense": "tfprobr_bridge.layers.dense",
    "_ops": "tfprobr_bridge.layers.ops",
    "_defaults": "tfprobr_bridge.layers.defaults",
    "_fn_serialization": "tfprobr_bridge.layers.fn_serialization",
    "_docs": "tfprobr_bridge.layers.docs",
    "_monte_carlo": "tfprobr_bridge.uncertainty.monte_carlo",
    "_calibration": "tfprobr_bridge.uncertainty.calibration",
    "_error_detection": "tfprobr_bridge.uncertainty.error_detection",
    "_warm_start": "tfprobr_bridge.uncertainty.warm_start",
    "_factory": "tfprobr_bridge.r_bridge.factory",
    "_stack": "tfprobr_bridge.r_bridge.stack",
    "_main_thread": "tfprobr_bridge.r_bridge.main_thread",
    "_validation": "tfprobr_bridge.validation",
    "_datasets": "tfprobr_bridge.datasets",
}


def install():
    """Make every old module path import as the module that holds its objects now."""
    for old, new in _OLD_PATHS.items():
        sys.modules.setdefault(f"tfprobr_bridge.{old}", importlib.import_module(new))
