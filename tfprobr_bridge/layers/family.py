"""The family by kind, rank and estimator: the one table the rest of the package reads.

Each member is a public class, found by ``member(kind, rank, estimator)``, with
TFP's tf_keras class of the same kind, rank and estimator (None where TFP has
none: local reparameterization for convolutions is this package's own).
"""

import collections

from tfprobr_bridge.layers import conv
from tfprobr_bridge.layers import dense

# The estimator ids, as `to_bayesian(estimator=)` and R's function names spell them.
ESTIMATORS = ("reparameterization", "flipout", "local_reparameterization")

Member = collections.namedtuple("Member", "kind rank estimator cls tfp_name")


def _tfp_name(cls):
    if cls.kind == "conv" and cls.estimator_id == "local_reparameterization":
        return None
    return cls.__name__.replace("Conv", "Convolution", 1)


_CLASSES = (
    conv.Conv1DReparameterization, conv.Conv2DReparameterization, conv.Conv3DReparameterization,
    conv.Conv1DFlipout, conv.Conv2DFlipout, conv.Conv3DFlipout,
    conv.Conv1DLocalReparameterization, conv.Conv2DLocalReparameterization,
    conv.Conv3DLocalReparameterization,
    dense.DenseReparameterization, dense.DenseFlipout, dense.DenseLocalReparameterization,
)

MEMBERS = tuple(Member(cls.kind, cls.rank, cls.estimator_id, cls, _tfp_name(cls))
                for cls in _CLASSES)
_BY_KEY = {(m.kind, m.rank, m.estimator): m for m in MEMBERS}
_BY_CLASS = {m.cls: m for m in MEMBERS}


def member(kind, rank, estimator):
    """The member of ``kind`` ("conv" or "dense"), ``rank`` (1-3, None for dense) and estimator."""
    return _BY_KEY[(kind, rank, estimator)]


def of_class(cls):
    """The member whose class is ``cls``, or None."""
    return _BY_CLASS.get(cls)
