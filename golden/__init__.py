"""Golden models: trainable PyTorch networks and the integer models the hardware must match."""
