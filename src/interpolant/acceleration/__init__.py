"""Network and denoiser transforms for speed, and the solver and grid chosen for a budget.

Every method wraps (DESIGN.md: acceleration wraps a denoiser, it does not patch a solver):

- :func:`search`: solver, options and time grid for an NFE budget against a fine reference
  of the user's own model (AutoDiffusion, USF / S^3);
- :func:`model_statistics`: DPM-Solver-v3's empirical model statistics of a model and data;
- :class:`DeepCacheUNet`, :class:`EncoderPropagationUNet`, :class:`BlockCacheDiT`: feature
  caching (DeepCache, Faster Diffusion, FORA);
- :func:`fake_quantize`, :func:`quantize_int8`, :func:`calibration_inputs`: post-training
  quantization with time-step-aware calibration (PTQ4DM, Q-Diffusion), temporal layers kept
  exact (:func:`temporal_layers`, TFMQ-DM);
- :func:`compile_network`, :class:`CastNetwork`: ``torch.compile`` with a fallback, bf16;
- :func:`accelerate`: all of them on a denoiser, returning a denoiser (what the CLI calls);
- :func:`step_errors`: the per-call error of any of them against the plain denoiser;
- :class:`TimeShift`: the Time-Shift Sampler's shifted network times (exposure bias);
- :class:`DynamicCompensation`, :func:`fit_ratios`: DC-Solver's compensated model outputs;
- :func:`learn_schedule`: the full calls of a cache learned on the final error (HarmoniCa);
- :func:`train_router`, :class:`RoutedDiT`: HarmoniCa's trained per-call, per-block router;
- :func:`calibrate_exits`, :class:`EarlyExitDiT`: fewer DiT blocks where the time step allows
  it, within a measured error (after DeeDiff); :func:`train_heads`, :func:`uncertain_exits`:
  DeeDiff's trained uncertainty heads deciding the exit input by input;
- :func:`eda_calibration`, :func:`reconstruct`: EDA-DM's calibration samples aligned with the
  run's time steps and block reconstruction of the rounding (``quantize="eda<bits>"``).
"""

from ._wrap import network_of, rewrap, step_errors
from .cache import BlockCacheDiT, CacheSchedule, DeepCacheUNet, EncoderPropagationUNet
from .cache_search import LearnedSchedule, learn_schedule
from .compensation import DynamicCompensation, fit_ratios
from .compile import CastNetwork, CompiledNetwork, accelerate, compile_network, quantization
from .deediff import UncertainExitDiT, UncertaintyHeads, train_heads, uncertain_exits
from .early_exit import EarlyExitDiT, calibrate_exits
from .eda import alignment_weights, allocate, eda_calibration, reconstruct
from .quantize import (calibration_inputs, fake_quantize, quantize_int8, round_to_bits,
                       temporal_layers)
from .router import RoutedDiT, Router, train_router
from .search import DEFAULT_CANDIDATES, SearchResult, search
from .statistics import model_statistics
from .time_shift import TimeShift

__all__ = [
    "BlockCacheDiT", "CacheSchedule", "CastNetwork", "CompiledNetwork", "DEFAULT_CANDIDATES",
    "alignment_weights", "allocate", "eda_calibration", "reconstruct",
    "RoutedDiT", "Router", "train_router", "UncertainExitDiT", "UncertaintyHeads",
    "train_heads", "uncertain_exits",
    "DeepCacheUNet", "DynamicCompensation", "EarlyExitDiT", "EncoderPropagationUNet",
    "LearnedSchedule", "SearchResult", "TimeShift", "accelerate", "calibrate_exits",
    "calibration_inputs", "compile_network", "fake_quantize", "fit_ratios", "learn_schedule",
    "model_statistics", "network_of", "quantization", "quantize_int8", "rewrap", "round_to_bits",
    "search", "step_errors", "temporal_layers",
]
