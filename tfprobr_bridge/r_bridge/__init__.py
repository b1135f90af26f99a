"""What R-shaped callers need: ``create_layer`` and the ``layer_*`` functions (arguments as
reticulate delivers them), ``LayerStack``, the main-thread wrapper for R functions, and the
facts the R package asks Python for (``facts``).
"""
