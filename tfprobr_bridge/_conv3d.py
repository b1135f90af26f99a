"""``Conv3DReparameterization``: the public 3-D shim over the rank-generic base."""

import keras

from tfprobr_bridge._base_conv import DEFAULT_FNS
from tfprobr_bridge._base_conv import ConvReparameterizationBase


@keras.saving.register_keras_serializable(package="tfprobr_bridge")
class Conv3DReparameterization(ConvReparameterizationBase):
    """3-D convolution (over volumes) with a kernel and bias drawn from distributions.

    A Keras 3 layer with the constructor and protocol of TFP's
    ``tfp.layers.Convolution3DReparameterization``. Each call draws one kernel
    (and bias) from the surrogate posterior with the reparameterization
    estimator (Kingma and Welling, 2014), shares it across the batch, computes
    ``activation(conv3d(inputs, kernel) + bias)``, and adds the divergences
    between posteriors and priors to ``layer.losses`` (kernel first, then bias).

    When training on minibatches, scale the divergence so it counts once per
    epoch, e.g. ``kernel_divergence_fn=lambda q, p, _: kl_divergence(q, p) / n``
    for ``n`` training examples.

    The defaults are serialisable equivalents of TFP's: a mean-field Normal
    kernel posterior, a standard Normal kernel prior, a point-mass bias with no
    prior, one sample per call and the analytic KL. Any callable that follows
    TFP's protocol may replace them, TFP's own closures included.

    Args:
        filters: Integer, the number of output channels.
        kernel_size: An integer or a list of 1 or 3 integers: the depth, height
            and width of the convolution window.
        strides: An integer or a list of 1 or 3 integers. Strides > 1 cannot
            be combined with `dilation_rate` > 1.
        padding: `"valid"` or `"same"` (case-insensitive).
        data_format: `"channels_last"` (inputs `(batch, depth, height, width,
            channels)`) or `"channels_first"` (`(batch, channels, depth,
            height, width)`).
        dilation_rate: An integer or a list of 1 or 3 integers.
        activation: Activation name or callable; None for linear.
        activity_regularizer: Regularizer applied to the output.
        kernel_posterior_fn: `fn(dtype, shape, name, trainable,
            add_variable_fn)` returning the kernel's surrogate posterior.
        kernel_posterior_tensor_fn: `fn(distribution)` returning the kernel
            used in this call.
        kernel_prior_fn: Like `kernel_posterior_fn`, for the prior; None for
            no prior (and no kernel divergence).
        kernel_divergence_fn: `fn(posterior, prior, kernel_tensor)` returning a
            scalar added to the layer's losses; None for none.
        bias_posterior_fn: Like `kernel_posterior_fn` for the bias; None for no
            bias.
        bias_posterior_tensor_fn: Like `kernel_posterior_tensor_fn`.
        bias_prior_fn: Like `kernel_prior_fn`; None (the default) for no prior.
        bias_divergence_fn: Like `kernel_divergence_fn`.
        **kwargs: Keras layer arguments (`name`, `dtype`, `trainable`,
            `input_shape`, ...), and `seed`: an integer that gives this layer
            its own random stream, so its draws (by the default tensor fns,
            or any fn that calls `tfprobr_bridge.sample`) repeat run after
            run. Part of the config; the stream restarts when a saved model
            is loaded.

    Input shape:
        5-D tensor `(batch, depth, height, width, channels)` for
        channels_last, `(batch, channels, depth, height, width)` for
        channels_first.

    Output shape:
        5-D tensor with `filters` channels and spatial sizes given by the
        padding, strides and dilation, as TFP computes them.

    Raises:
        ValueError, TypeError: at construction, for any invalid argument; at
            build, for inputs of the wrong rank, with an unknown channel
            dimension, or smaller than the kernel with `"valid"` padding.

    Example:

    >>> import numpy as np, keras
    >>> from tfprobr_bridge import Conv3DReparameterization
    >>> layer = Conv3DReparameterization(4, kernel_size=3, padding="same")
    >>> y = layer(np.zeros((2, 8, 8, 8, 1), "float32"))
    >>> tuple(y.shape), len(layer.losses)
    ((2, 8, 8, 8, 4), 1)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1, 1),
        padding="valid",
        data_format="channels_last",
        dilation_rate=(1, 1, 1),
        activation=None,
        activity_regularizer=None,
        kernel_posterior_fn=DEFAULT_FNS["kernel_posterior_fn"],
        kernel_posterior_tensor_fn=DEFAULT_FNS["kernel_posterior_tensor_fn"],
        kernel_prior_fn=DEFAULT_FNS["kernel_prior_fn"],
        kernel_divergence_fn=DEFAULT_FNS["kernel_divergence_fn"],
        bias_posterior_fn=DEFAULT_FNS["bias_posterior_fn"],
        bias_posterior_tensor_fn=DEFAULT_FNS["bias_posterior_tensor_fn"],
        bias_prior_fn=DEFAULT_FNS["bias_prior_fn"],
        bias_divergence_fn=DEFAULT_FNS["bias_divergence_fn"],
        **kwargs,
    ):
        super().__init__(
            rank=3,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            activity_regularizer=activity_regularizer,
            kernel_posterior_fn=kernel_posterior_fn,
            kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
            kernel_prior_fn=kernel_prior_fn,
            kernel_divergence_fn=kernel_divergence_fn,
            bias_posterior_fn=bias_posterior_fn,
            bias_posterior_tensor_fn=bias_posterior_tensor_fn,
            bias_prior_fn=bias_prior_fn,
            bias_divergence_fn=bias_divergence_fn,
            **kwargs,
        )
