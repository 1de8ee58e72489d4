"""Discrete diffusion on tokens: processes, exact oracle, objectives, samplers.

Tokens are int64 ``(B, L)`` in ``[0, K)``; the masked process adds the mask id ``K``. Time runs
from data at ``t = 0`` to noise at ``t = 1``; categorical draws are float64 Gumbel-max.

>>> import torch
>>> from interpolant import discrete as dd
>>> process = dd.Masked("cosine", num_tokens=4)
>>> oracle = dd.TokenOracle.random(num_tokens=4, length=3)
>>> g = torch.Generator().manual_seed(0)
>>> out = dd.sample(oracle.model(process), process, n=8, length=3, sampler="first-hitting",
...                 generator=g)
>>> out.tokens.shape, out.nfe
(torch.Size([8, 3]), 3)
"""

from .argmax import (
    argmax_dequantize, argmax_elbo, argmax_quantize, multinomial_posterior, thresholding_inverse,
)
from .benchmarks import sampler_table, tv_floor
from .binary import TabularBits, flip_logits_to_x0, flip_loss, flip_probability, threshold_sample
from .blackout import Blackout
from .categorical import categorical, gumbel_noise, tail_factor
from .d3pm import D3PM
from .data import (
    DIGIT_LEVELS, TEXT_VOCAB, bits, decode_text, digit_images, digit_tokens, text_tokens,
)
from .duality import argmax_tokens, duo_alpha
from .duo_distill import DuoSchedule, dcd_loss, distill, duo_process, trajectory_pair
from .metrics import NGramModel, distinct_ngrams
from .guidance import CFGTokenDenoiser, ClassifierGuidedDenoiser, tempered_product
from .objectives import (
    OBJECTIVES, ctmc_elbo, d3pm_loss, d3pm_step_kl, loss_for, masked_elbo, prior_kl,
)
from .oracle import TokenOracle, all_sequences, labelled_classifier, labelled_model
from .processes import Masked, Process, Uniform, check_tokens
from .sampling import (
    SAMPLERS, Samples, TokenDenoiser, ancestral, first_hitting, sample, tau_leaping,
)
from .schedules import Cosine, Linear, Polynomial, Schedule, Tabulated, schedule
from .training import evaluate_bound, train_tokens

__all__ = [
    "Blackout", "CFGTokenDenoiser", "DuoSchedule", "ClassifierGuidedDenoiser", "Cosine", "D3PM", "DIGIT_LEVELS",
    "Linear", "Masked", "NGramModel", "OBJECTIVES", "Polynomial", "Process", "SAMPLERS", "Samples",
    "Schedule", "TEXT_VOCAB", "TabularBits", "Tabulated", "TokenDenoiser", "TokenOracle", "Uniform",
    "all_sequences", "ancestral", "argmax_dequantize", "argmax_elbo", "argmax_quantize", "argmax_tokens", "bits", "categorical", "check_tokens",
    "ctmc_elbo", "d3pm_loss", "dcd_loss", "distill", "d3pm_step_kl", "decode_text", "digit_images", "digit_tokens",
    "distinct_ngrams", "duo_alpha", "duo_process", "evaluate_bound", "first_hitting", "flip_logits_to_x0",
    "flip_loss", "flip_probability", "gumbel_noise",
    "labelled_classifier", "labelled_model", "loss_for", "masked_elbo", "multinomial_posterior", "prior_kl", "sample",
    "sampler_table", "schedule", "tail_factor", "tau_leaping", "tempered_product", "text_tokens",
    "threshold_sample", "thresholding_inverse", "trajectory_pair",
    "train_tokens", "tv_floor",
]
