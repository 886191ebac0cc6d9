"""Training (SimCLR pre-training, VAE + metric-learning fine-tuning); apart from inference,
reusing its image loading (`imaging`) and model definition (`model`)."""
