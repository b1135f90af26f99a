"""TensorFlow Probability's variational layers (Bayesian convolutions and dense layers), on Keras 3, for R and Python.

The public surface is ``__all__``. Behind it, dependencies point down only:

- ``layers/``: the variational family (base, estimators, conv and dense shims,
  ops, default fns and priors, seeding, fn saving, the family table);
- ``uncertainty/``: Monte Carlo prediction, calibration, error detection,
  warm start; it uses models and the family table, never the R bridge;
- ``r_bridge/``: the R-shaped factory (``layer_*`` functions), ``LayerStack``,
  and what the R package asks Python for;
- ``validation`` and ``datasets`` beside them.
"""

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

if os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() in ("1", "true", "yes"):
    warnings.warn(
        "TF_USE_LEGACY_KERAS is set, so tf.keras is tf_keras (Keras 2) in this process, and "
        "tf.keras models reject tfprobr_bridge's layers, which are Keras 3 layers. Build models "
        "with `import keras` (keras.Sequential, keras.Model); a tf_keras model or tensor given to "
        "a layer_* function gets TFP's own tf_keras class instead.",
        stacklevel=2,
    )

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "tfprobr_bridge needs Keras's TensorFlow backend, but Keras is using "
        f"{keras.backend.backend()!r}. Set the environment variable "
        "KERAS_BACKEND=tensorflow before importing keras."
    )

from tfprobr_bridge.layers.conv import Conv1DReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Conv2DReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Conv3DReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Conv1DFlipout  # noqa: E402
from tfprobr_bridge.layers.conv import Conv2DFlipout  # noqa: E402
from tfprobr_bridge.layers.conv import Conv3DFlipout  # noqa: E402
from tfprobr_bridge.layers.conv import Conv1DLocalReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Conv2DLocalReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Conv3DLocalReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution1DReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution2DReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution3DReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution1DFlipout  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution2DFlipout  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution3DFlipout  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution1DLocalReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution2DLocalReparameterization  # noqa: E402
from tfprobr_bridge.layers.conv import Convolution3DLocalReparameterization  # noqa: E402
from tfprobr_bridge.layers.dense import DenseReparameterization  # noqa: E402
from tfprobr_bridge.layers.dense import DenseFlipout  # noqa: E402
from tfprobr_bridge.layers.dense import DenseLocalReparameterization  # noqa: E402
from tfprobr_bridge.layers.defaults import EmpiricalNormalPrior  # noqa: E402
from tfprobr_bridge.layers.defaults import MeanFieldNormal  # noqa: E402
from tfprobr_bridge.layers.defaults import ScaledKLDivergence  # noqa: E402
from tfprobr_bridge.layers.defaults import default_mean_field_normal_fn  # noqa: E402
from tfprobr_bridge.layers.defaults import default_multivariate_normal_fn  # noqa: E402
from tfprobr_bridge.layers.defaults import kl_divergence_fn  # noqa: E402
from tfprobr_bridge.layers.defaults import sample  # noqa: E402
from tfprobr_bridge.layers.defaults import scaled_kl_divergence_fn  # noqa: E402
from tfprobr_bridge.layers.fn_serialization import UnsavableFnError  # noqa: E402
from tfprobr_bridge.layers.distribution import CategoricalMixtureOfOneHotCategorical  # noqa: E402
from tfprobr_bridge.layers.distribution import DistributionLambda  # noqa: E402
from tfprobr_bridge.layers.distribution import IndependentBernoulli  # noqa: E402
from tfprobr_bridge.layers.distribution import IndependentLogistic  # noqa: E402
from tfprobr_bridge.layers.distribution import IndependentNormal  # noqa: E402
from tfprobr_bridge.layers.distribution import IndependentPoisson  # noqa: E402
from tfprobr_bridge.layers.distribution import MixtureLogistic  # noqa: E402
from tfprobr_bridge.layers.distribution import MixtureNormal  # noqa: E402
from tfprobr_bridge.layers.distribution import MixtureSameFamily  # noqa: E402
from tfprobr_bridge.layers.distribution import MultivariateNormalTriL  # noqa: E402
from tfprobr_bridge.layers.distribution import OneHotCategorical  # noqa: E402
from tfprobr_bridge.layers.distribution import distribution_of  # noqa: E402
from tfprobr_bridge.layers.distribution import negative_log_likelihood  # noqa: E402
from tfprobr_bridge.layers.variational_models import DenseVariational  # noqa: E402
from tfprobr_bridge.layers.variational_models import KLDivergenceAddLoss  # noqa: E402
from tfprobr_bridge.layers.variational_models import KLDivergenceRegularizer  # noqa: E402
from tfprobr_bridge.layers.variational_models import VariableLayer  # noqa: E402
from tfprobr_bridge.layers.variational_models import make_kl_divergence_fn  # noqa: E402
from tfprobr_bridge.layers.autoregressive import AutoregressiveNetwork  # noqa: E402
from tfprobr_bridge.layers.autoregressive import AutoregressiveTransform  # noqa: E402
from tfprobr_bridge.layers.gaussian_process import VariationalGaussianProcess  # noqa: E402
from tfprobr_bridge.layers import saving as _saving  # noqa: E402
from tfprobr_bridge.uncertainty.calibration import calibration  # noqa: E402
from tfprobr_bridge.uncertainty.calibration import plot_reliability_diagram  # noqa: E402
from tfprobr_bridge.uncertainty.error_detection import error_detection_auroc  # noqa: E402
from tfprobr_bridge.uncertainty.error_detection import wrong_predictions  # noqa: E402
from tfprobr_bridge.uncertainty.monte_carlo import predict_mc  # noqa: E402
from tfprobr_bridge.uncertainty.nifti import load_preprocessing  # noqa: E402
from tfprobr_bridge.uncertainty.nifti import preprocessing  # noqa: E402
from tfprobr_bridge.uncertainty.nifti import save_segmenter  # noqa: E402
from tfprobr_bridge.uncertainty.nifti import segment_nifti  # noqa: E402
from tfprobr_bridge.uncertainty.volume import predict_volume  # noqa: E402
from tfprobr_bridge.uncertainty.warm_start import to_bayesian  # noqa: E402
from tfprobr_bridge.r_bridge.factory import add_layer  # noqa: E402
from tfprobr_bridge.r_bridge.factory import create_layer  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_1d_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_2d_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_3d_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_1d_flipout  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_2d_flipout  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_3d_flipout  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_1d_local_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_2d_local_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_conv_3d_local_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_dense_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_dense_flipout  # noqa: E402
from tfprobr_bridge.r_bridge.factory import layer_dense_local_reparameterization  # noqa: E402
from tfprobr_bridge.r_bridge.stack import LayerStack  # noqa: E402
from tfprobr_bridge.datasets import load_mni152_tissue  # noqa: E402
from tfprobr_bridge import _legacy_paths  # noqa: E402

# Saving checks this package's layers' fns before Keras opens the file.
_saving.install()
# Modules of the layout before layers/, uncertainty/ and r_bridge/, for pickles
# of user fns saved then, which name them.
_legacy_paths.install()

__version__ = "0.1.0"

__all__ = [
    "AutoregressiveNetwork",
    "AutoregressiveTransform",
    "CategoricalMixtureOfOneHotCategorical",
    "Conv1DFlipout",
    "Conv1DLocalReparameterization",
    "Conv1DReparameterization",
    "Conv2DFlipout",
    "Conv2DLocalReparameterization",
    "Conv2DReparameterization",
    "Conv3DFlipout",
    "Conv3DLocalReparameterization",
    "Conv3DReparameterization",
    "Convolution1DFlipout",
    "Convolution1DLocalReparameterization",
    "Convolution1DReparameterization",
    "Convolution2DFlipout",
    "Convolution2DLocalReparameterization",
    "Convolution2DReparameterization",
    "Convolution3DFlipout",
    "Convolution3DLocalReparameterization",
    "Convolution3DReparameterization",
    "DenseFlipout",
    "DenseLocalReparameterization",
    "DenseReparameterization",
    "DenseVariational",
    "DistributionLambda",
    "EmpiricalNormalPrior",
    "IndependentBernoulli",
    "IndependentLogistic",
    "IndependentNormal",
    "IndependentPoisson",
    "KLDivergenceAddLoss",
    "KLDivergenceRegularizer",
    "LayerStack",
    "MeanFieldNormal",
    "MixtureLogistic",
    "MixtureNormal",
    "MixtureSameFamily",
    "MultivariateNormalTriL",
    "OneHotCategorical",
    "ScaledKLDivergence",
    "UnsavableFnError",
    "VariableLayer",
    "VariationalGaussianProcess",
    "add_layer",
    "calibration",
    "create_layer",
    "default_mean_field_normal_fn",
    "default_multivariate_normal_fn",
    "distribution_of",
    "error_detection_auroc",
    "kl_divergence_fn",
    "layer_conv_1d_flipout",
    "layer_conv_1d_local_reparameterization",
    "layer_conv_1d_reparameterization",
    "layer_conv_2d_flipout",
    "layer_conv_2d_local_reparameterization",
    "layer_conv_2d_reparameterization",
    "layer_conv_3d_flipout",
    "layer_conv_3d_local_reparameterization",
    "layer_conv_3d_reparameterization",
    "layer_dense_flipout",
    "layer_dense_local_reparameterization",
    "layer_dense_reparameterization",
    "load_mni152_tissue",
    "load_preprocessing",
    "make_kl_divergence_fn",
    "negative_log_likelihood",
    "plot_reliability_diagram",
    "predict_mc",
    "predict_volume",
    "preprocessing",
    "sample",
    "save_segmenter",
    "scaled_kl_divergence_fn",
    "segment_nifti",
    "to_bayesian",
    "wrong_predictions",
]
