"""TensorFlow Probability's Bayesian 3-D convolution, on Keras 3, for R and Python.

The public surface is ``__all__``; everything else lives in private modules.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "tfprobr_bridge needs Keras's TensorFlow backend, but Keras is using "
        f"{keras.backend.backend()!r}. Set the environment variable "
        "KERAS_BACKEND=tensorflow before importing keras."
    )

from tfprobr_bridge._conv3d import Conv3DReparameterization  # noqa: E402
from tfprobr_bridge._datasets import load_mni152_tissue  # noqa: E402
from tfprobr_bridge._defaults import MeanFieldNormal  # noqa: E402
from tfprobr_bridge._defaults import default_mean_field_normal_fn  # noqa: E402
from tfprobr_bridge._defaults import default_multivariate_normal_fn  # noqa: E402
from tfprobr_bridge._defaults import kl_divergence_fn  # noqa: E402
from tfprobr_bridge._defaults import ScaledKLDivergence  # noqa: E402
from tfprobr_bridge._defaults import sample  # noqa: E402
from tfprobr_bridge._defaults import scaled_kl_divergence_fn  # noqa: E402
from tfprobr_bridge._factory import add_layer  # noqa: E402
from tfprobr_bridge._factory import layer_conv_3d_reparameterization  # noqa: E402
from tfprobr_bridge._monte_carlo import predict_mc  # noqa: E402
from tfprobr_bridge._stack import LayerStack  # noqa: E402
from tfprobr_bridge import _main_thread  # noqa: E402,F401 -- the R package wraps R fns with it

__version__ = "0.1.0"

__all__ = [
    "Conv3DReparameterization",
    "LayerStack",
    "MeanFieldNormal",
    "ScaledKLDivergence",
    "add_layer",
    "default_mean_field_normal_fn",
    "default_multivariate_normal_fn",
    "kl_divergence_fn",
    "layer_conv_3d_reparameterization",
    "load_mni152_tissue",
    "predict_mc",
    "sample",
    "scaled_kl_divergence_fn",
]
