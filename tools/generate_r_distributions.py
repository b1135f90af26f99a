"""Write r/R/distributions_generated.R: an R constructor for each TFP distribution class.

rstudio/tfprobability exports 101 ``tfd_*`` constructors; this writes them from
TensorFlow Probability's own signatures (as rstudio/keras3 writes its wrappers
from Keras), so their formals are the installed TFP's: names, order and
defaults (``None`` -> ``NULL``, ``True`` -> ``TRUE``, ``tf.int32`` ->
``tensorflow::tf$int32``; a default R cannot spell is ``NULL`` in R and left
to Python). Classes TFP 0.25 no longer has are listed, not written.

    python tools/generate_r_distributions.py [output]
"""

import inspect
import pathlib
import re
import sys

import tensorflow as tf
import tensorflow_probability as tfp

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "r" / "R" / "distributions_generated.R"
tfd = tfp.distributions

# rstudio/tfprobability's constructors (its NAMESPACE), by R name.
R_NAMES = """autoregressive batch_reshape bates bernoulli beta beta_binomial binomial blockwise
categorical cauchy chi chi2 cholesky_lkj continuous_bernoulli deterministic dirichlet
dirichlet_multinomial doublesided_maxwell empirical exp_gamma exp_inverse_gamma
exp_relaxed_one_hot_categorical exponential finite_discrete gamma gamma_gamma gaussian_process
gaussian_process_regression_model generalized_normal generalized_pareto geometric gumbel
half_cauchy half_normal hidden_markov_model horseshoe independent inverse_gamma inverse_gaussian
johnson_s_u joint_distribution_named joint_distribution_named_auto_batched
joint_distribution_sequential joint_distribution_sequential_auto_batched kumaraswamy laplace
linear_gaussian_state_space_model lkj log_logistic log_normal logistic logit_normal mixture
mixture_same_family multinomial multivariate_normal_diag multivariate_normal_diag_plus_low_rank
multivariate_normal_full_covariance multivariate_normal_linear_operator multivariate_normal_tri_l
multivariate_student_t_linear_operator negative_binomial normal one_hot_categorical pareto pert
pixel_cnn plackett_luce poisson poisson_log_normal_quadrature_compound power_spherical
probit_bernoulli quantized relaxed_bernoulli relaxed_one_hot_categorical sample_distribution
sinh_arcsinh skellam spherical_uniform student_t student_t_process transformed_distribution
triangular truncated_cauchy truncated_normal uniform variational_gaussian_process
vector_deterministic vector_diffeomixture vector_exponential_diag
vector_exponential_linear_operator vector_laplace_diag vector_laplace_linear_operator
vector_sinh_arcsinh_diag von_mises von_mises_fisher weibull wishart wishart_linear_operator
wishart_tri_l zipf""".split()

# R names whose class name is not the CamelCase of the R name.
SPECIAL = {
    "chi2": "Chi2", "lkj": "LKJ", "cholesky_lkj": "CholeskyLKJ", "pert": "PERT",
    "johnson_s_u": "JohnsonSU", "sample_distribution": "Sample", "pixel_cnn": "PixelCNN",
    "multivariate_normal_tri_l": "MultivariateNormalTriL", "wishart_tri_l": "WishartTriL",
    "quantized": "QuantizedDistribution", "vector_deterministic": "VectorDeterministic",
}

# Arguments that count or index (dimensions, sizes, numbers of things): R's whole
# doubles go to Python as integers.
INTEGER = re.compile(r"(ndims$|^num_|_size$|^dimension$|^order$|^event_shape$|^batch_shape$|"
                     r"^sample_shape$|^num_steps$|^rank$|^axis$|^index_points_ndims$)")


def class_name(r_name):
    if r_name in SPECIAL:
        return SPECIAL[r_name]
    camel = "".join(part.capitalize() for part in r_name.split("_"))
    classes = {name.lower(): name for name in dir(tfd) if inspect.isclass(getattr(tfd, name))}
    return classes.get(camel.lower(), camel)


def r_default(value):
    """The R spelling of a Python default, or None when R has none."""
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, int):
        return f"{value}L"
    if isinstance(value, float):
        return repr(value).replace("inf", "Inf")
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tf.dtypes.DType):
        return f"tensorflow::tf${value.name}"
    if isinstance(value, tuple) and not value:
        return "list()"
    return None


def constructor(r_name):
    """(R source, the class name, its argument names) of one constructor, or None."""
    name = class_name(r_name)
    cls = getattr(tfd, name, None)
    if not inspect.isclass(cls):
        return None
    signature = inspect.signature(cls.__init__)
    formals, integers, python_defaults = [], [], []
    for parameter in list(signature.parameters.values())[1:]:
        if parameter.kind is parameter.VAR_KEYWORD:
            formals.append("...")
            continue
        if parameter.kind is parameter.VAR_POSITIONAL or parameter.name.startswith("_"):
            continue  # R has no name for it; Python's default applies
        if parameter.default is parameter.empty:
            formals.append(parameter.name)
        else:
            default = r_default(parameter.default)
            if default is None:  # Python's own default applies when R gives NULL
                python_defaults.append(parameter.name)
                default = "NULL"
            formals.append(f"{parameter.name} = {default}")
        if INTEGER.search(parameter.name):
            integers.append(parameter.name)
    arguments = [f for f in formals if f != "..."]
    names = [f.split(" = ")[0] for f in arguments]
    indent = " " * (len(f"tfd_{r_name} <- function("))
    source = [
        "#' @rdname tfd_distributions",
        "#' @export",
        f"tfd_{r_name} <- function(" + (",\n" + indent).join(formals) + ") {",
        f"  new_distribution(\"{name}\", integers = {r_vector(integers)}, "
        f"python_defaults = {r_vector(python_defaults)})",
        "}",
    ]
    return "\n".join(source), name, names


def r_vector(names):
    return "character()" if not names else "c(" + ", ".join(f'"{n}"' for n in names) + ")"


def generate():
    written, absent, arguments = [], [], set()
    for r_name in R_NAMES:
        made = constructor(r_name)
        if made is None:
            absent.append(f"tfd_{r_name}")
            continue
        source, name, names = made
        written.append(source)
        arguments.update(names)
    header = f"""# Generated by tools/generate_r_distributions.py from TensorFlow Probability
# {tfp.__version__}'s own signatures: do not edit by hand; run
#   python tools/generate_r_distributions.py
# and `Rscript -e 'roxygen2::roxygenise()'` in r/.
#
# rstudio/tfprobability's constructors that TFP {tfp.__version__} has no class for, so
# not written: {", ".join(absent) or "none"}.

#' TensorFlow Probability's distributions
#'
#' One function per distribution class of TensorFlow Probability
#' (`tfd_normal()` is `tfp$distributions$Normal`), with that class's
#' arguments, in its order, with its defaults. Whole numbers given for
#' counts, sizes and dimensions (such as `reinterpreted_batch_ndims`) reach
#' Python as integers. The distributions work with the `tfd_*()` methods
#' ([tfd_sample()], [tfd_log_prob()], [tfd_mean()], ...) and in the
#' `make_distribution_fn` of [layer_distribution_lambda()].
#'
#' @param {",".join(sorted(arguments))} Arguments of the TensorFlow Probability
#'   distribution of the same name (see its documentation).
{"#' @param ... Further arguments of the class." + chr(10) if any("..." in source for source in written) else ""}#' @return A TensorFlow Probability distribution.
#' @examples
#' d <- tfd_normal(loc = 0, scale = 1)
#' tfd_log_prob(d, 0)
#' tfd_independent(tfd_normal(loc = c(0, 0), scale = 1), reinterpreted_batch_ndims = 1)
#' @name tfd_distributions
NULL
"""
    return header + "\n" + "\n\n".join(written) + "\n", written, absent


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    output = pathlib.Path(argv[0]) if argv else OUTPUT
    text, written, absent = generate()
    output.write_text(text)
    print(f"wrote {output}: {len(written)} constructors; not in TFP {tfp.__version__}: "
          f"{', '.join(absent)}")


if __name__ == "__main__":
    main()
