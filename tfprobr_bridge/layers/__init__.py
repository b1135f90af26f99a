"""The variational family: one base (TFP's protocol), three estimators, two rank shims.

``base`` owns the protocol; ``estimators`` turn inputs and the posterior into
outputs; ``conv`` and ``dense`` fix the rank; ``ops`` holds the TensorFlow
operations and workarounds; ``defaults`` the serialisable default fns and
priors; ``seeding`` where draws take their randomness; ``fn_serialization``
and ``saving`` how fns are saved; ``docs`` the docstrings; ``family`` the
table of members that everything else reads. Nothing here knows of R.
"""
