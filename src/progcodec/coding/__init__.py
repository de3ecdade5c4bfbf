"""Entropy coding pieces: Gaussian symbol coding, ranking, the ranked-residual codec."""
