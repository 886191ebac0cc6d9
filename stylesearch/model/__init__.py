"""The style model: one encoder definition shared by inference and training.

Submodules are imported directly (`model.encoder`, `model.checkpoint`, `model.locate`) so
that finding a model file never pays for importing torch.
"""
