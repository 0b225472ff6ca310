"""Synthetic paired billing exports with the true answer.  Depends on nothing else of ours."""
