"""The public surface is exactly __all__, and it covers DESIGN.md's contract."""

import inspect

import keras

import tfprobr_bridge

CONTRACT = {"Conv3DReparameterization", "layer_conv_3d_reparameterization", "LayerStack"}


def test_all_is_honest():
    assert CONTRACT <= set(tfprobr_bridge.__all__)
    for name in tfprobr_bridge.__all__:
        assert hasattr(tfprobr_bridge, name), name
    public = {
        name
        for name, value in vars(tfprobr_bridge).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(tfprobr_bridge.__all__)


def test_factory_signature_is_the_r_signature():
    parameters = list(inspect.signature(tfprobr_bridge.layer_conv_3d_reparameterization).parameters)
    assert parameters == [
        "object", "filters", "kernel_size", "strides", "padding", "data_format",
        "dilation_rate", "activation", "activity_regularizer", "trainable",
        "kernel_posterior_fn", "kernel_posterior_tensor_fn", "kernel_prior_fn",
        "kernel_divergence_fn", "bias_posterior_fn", "bias_posterior_tensor_fn",
        "bias_prior_fn", "bias_divergence_fn", "kwargs",
    ]


def test_class_signature_is_tfps():
    import tensorflow_probability as tfp

    ours = inspect.signature(tfprobr_bridge.Conv3DReparameterization).parameters
    theirs = inspect.signature(tfp.layers.Convolution3DReparameterization).parameters
    assert list(ours) == list(theirs)
    for name in ("strides", "padding", "data_format", "dilation_rate", "activation",
                 "activity_regularizer", "bias_prior_fn"):
        assert ours[name].default == theirs[name].default, name


def test_layer_and_defaults_are_registered():
    for name in ("Conv3DReparameterization", "MeanFieldNormal", "ScaledKLDivergence",
                 "default_multivariate_normal_fn", "sample", "kl_divergence_fn"):
        assert keras.saving.get_registered_object(f"tfprobr_bridge>{name}") is getattr(
            tfprobr_bridge, name
        )
