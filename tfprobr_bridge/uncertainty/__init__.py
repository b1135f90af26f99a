"""Uncertainty a person can act on: Monte Carlo prediction, calibration, error detection,
warm start. These use models and the family table, never the layers' internals or the R bridge.
"""
