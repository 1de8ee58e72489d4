"""Sample quality and likelihood.

* two-sample distances (:mod:`.distances`): :func:`wasserstein` (exact OT),
  :func:`sliced_wasserstein`, :func:`mmd` (unbiased ``MMD^2``), :func:`energy_distance`;
* likelihood (:mod:`.likelihood`): :func:`log_likelihood` by the probability-flow ODE,
  :func:`bits_per_dim`, :func:`dequantize`;
* feature metrics (:mod:`.feature_distances`): :func:`frechet_distance`,
  :func:`gaussian_frechet`, :func:`kid`, :func:`precision_recall`, :func:`class_balance`;
* the digits feature network (:mod:`.digits_classifier`): :func:`digits_features`,
  :func:`digits_fd`, :func:`class_histogram`, :class:`DigitsClassifier`;
* memorisation (:mod:`.memorization`): :func:`nearest_neighbour_distance`.
"""

from .digits_classifier import (
    DigitsClassifier,
    class_histogram,
    digits_fd,
    digits_features,
    digits_logits,
    load_digits_classifier,
    train_digits_classifier,
)
from .distances import energy_distance, median_bandwidth, mmd, sliced_wasserstein, wasserstein
from .feature_distances import (
    class_balance,
    frechet_distance,
    gaussian_frechet,
    kid,
    precision_recall,
)
from .likelihood import bits_per_dim, dequantize, log_likelihood
from .memorization import nearest_neighbour_distance

__all__ = [
    "DigitsClassifier",
    "bits_per_dim",
    "class_balance",
    "class_histogram",
    "dequantize",
    "digits_fd",
    "digits_features",
    "digits_logits",
    "energy_distance",
    "frechet_distance",
    "gaussian_frechet",
    "kid",
    "load_digits_classifier",
    "log_likelihood",
    "median_bandwidth",
    "mmd",
    "nearest_neighbour_distance",
    "precision_recall",
    "sliced_wasserstein",
    "train_digits_classifier",
    "wasserstein",
]
