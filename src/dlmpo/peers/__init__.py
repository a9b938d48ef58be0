"""Peer optimizers run through their own packages, under dlmpo's target, data, splits and budget."""
