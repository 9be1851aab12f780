"""`dlc train`: the training loop for a spec's `train` definitions (needs torch; the inference
runtime in dlc.runtime.artifact does not import this package)."""
