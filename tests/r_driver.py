"""Child process for tests/test_r_package.py: Python -> rpy2 -> R -> reticulate -> Python.

Runs R code through rpy2, hands the Python objects R returned back to this
(same) interpreter through reticulate's __main__, records what it sees as
JSON in the file named by argv[1], and marks the record complete last. The
parent reads only complete records, so reticulate 1.28's abort at process exit
can neither fail nor hide a run.
"""

import json
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(path):
    import __main__

    import keras
    import rpy2.robjects as ro

    import tfprobr_bridge

    record = {}
    r = ro.r
    r("suppressPackageStartupMessages({library(keras3); library(tfprobr)})")
    record["python_started_by_library"] = bool(
        r("reticulate::py_available(initialize = FALSE)")[0]
    )

    formals = r(
        """function() {
          f <- formals(tfprobr::layer_conv_3d_reparameterization)
          vapply(f, function(x) {
            if (is.symbol(x) && identical(as.character(x), "")) "" else
              paste(deparse(x, width.cutoff = 500L), collapse = " ")
          }, "")
        }"""
    )()
    record["formals"] = [[name, value] for name, value in zip(formals.names, formals)]

    # R values in, Python objects out: hand them to this interpreter.
    r("main <- reticulate::import_main(convert = FALSE)")
    r(
        """main$layer <- layer_conv_3d_reparameterization(
             filters = 8, kernel_size = c(1, 2, 3), strides = 1, padding = "SAME",
             activation = "relu", name = "from_r")"""
    )
    layer = __main__.layer
    record["layer"] = {
        "is_ours": isinstance(layer, tfprobr_bridge.Conv3DReparameterization),
        "filters": [layer.filters, type(layer.filters).__name__],
        "kernel_size": list(layer.kernel_size),
        "padding": layer.padding,
        "activation": layer.activation.__name__,
        "name": layer.name,
        "default_posterior_is_native": isinstance(
            layer.kernel_posterior_fn, tfprobr_bridge.MeanFieldNormal
        ),
    }

    # The README's R example, in keras3's idiom.
    r(
        """n <- 1000
        model <- keras_model_sequential(input_shape = c(16, 16, 16, 1)) %>%
          layer_conv_3d_reparameterization(filters = 8, kernel_size = 3, activation = "relu",
                                           kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p) / n) |>
          layer_global_average_pooling_3d()
        main$model <- model"""
    )
    model = __main__.model
    x = keras.random.uniform((2, 16, 16, 16, 1))
    outputs = model(x)
    bayes = model.layers[0]
    kl = float(model.losses[0])
    expected_kl = float(
        tfprobr_bridge.kl_divergence_fn(bayes.kernel_posterior, bayes.kernel_prior, None)
    ) / 1000
    record["model"] = {
        "is_sequential": isinstance(model, keras.Sequential),
        "output_shape": list(outputs.shape),
        "layer_types": [type(layer).__name__ for layer in model.layers],
        "kl_scaled": abs(kl - expected_kl) <= 1e-5 * abs(expected_kl),
        "divergence_fn": [
            type(bayes.kernel_divergence_fn).__name__,
            type(bayes.kernel_divergence_fn.fn).__name__,
            getattr(bayes.kernel_divergence_fn.fn, "__module__", None),
            bayes.kernel_divergence_fn is tfprobr_bridge.kl_divergence_fn,
        ],
    }

    # A stack built in R is the Python LayerStack, and is immutable.
    r(
        """main$empty <- layer_stack(input_shape = c(6, 6, 6, 1))
        main$one <- main$empty %>% layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)"""
    )
    record["stack"] = {
        "lengths": [len(__main__.empty), len(__main__.one)],
        "input_shape": list(__main__.one.input_shape),
        "is_stack": isinstance(__main__.one, tfprobr_bridge.LayerStack),
    }

    # An error from Python reaches R as an R condition with the Keras-form message.
    record["error"] = list(
        r(
            """tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, padding = "causal"),
                        error = function(e) c(class(e)[1], conditionMessage(e),
                                              inherits(e, "python.builtin.ValueError")))"""
        )
    )
    record["complete"] = True
    with open(path, "w") as handle:
        json.dump(record, handle)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    sys.stdout.flush()
    os._exit(0)
