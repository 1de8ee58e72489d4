"""diffusers models as Denoisers: our solvers against diffusers' scheduler loops on the same
randomly initialised tiny networks (built offline from a config) and the same noise.

Each scheduler is run as its pipeline runs it (``scale_model_input``, the model at the
scheduler's integer timesteps, ``step``); ours is ``ip.sample`` on ``from_diffusers`` with the
scheduler's own times (``diffusers_grid``). diffusers keeps its schedule, sigmas and sample in
float32 and so do the networks, so agreement is to float32 rounding, measured relative to the
sample's scale; each test also shows a wrong mapping (the time offset, the solver, the shift)
far outside that tolerance.
"""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.interop import DiffusersNet, diffusers_grid, from_diffusers, shift_time
from interpolant.labels import NULL_LABEL

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

TOL = 2e-5  # max |ours - theirs| / max |theirs|
BETAS = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "beta_end": 0.012}
TINY = {"sample_size": 8, "block_out_channels": (8, 16), "layers_per_block": 1,
        "norm_num_groups": 4}
FIGURES: dict[str, float] = {}


def _unet(**config):
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        in_channels=3, out_channels=3, **TINY, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), **config).eval()


def _noise(n=2, c=3):
    return torch.randn(n, c, 8, 8, generator=torch.Generator().manual_seed(1))


def _loop(sched, model, x, cond=None, split=False):
    """diffusers' sampling loop, as its pipelines run it."""
    x = x * getattr(sched, "init_noise_sigma", 1.0)
    for k in sched.timesteps:
        inp = sched.scale_model_input(x, k) if hasattr(sched, "scale_model_input") else x
        out = model(inp, timestep=k.expand(len(x)), return_dict=False, **(cond or {}))[0]
        x = sched.step(out[:, : x.shape[1]] if split else out, k, x).prev_sample
    return x


def _rel(ours, theirs):
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def _check(name, ours, theirs, wrong=None):
    FIGURES[name] = ((ours - theirs).abs().max().item(), _rel(ours, theirs))
    assert torch.isfinite(theirs).all() and _rel(ours, theirs) < TOL, (name, _rel(ours, theirs))
    if wrong is not None:
        assert _rel(wrong, theirs) > 50 * TOL, (name, _rel(wrong, theirs))


def _parity(name, sched, model, solver, wrong, x1=None, cond=None, their_cond=None,
            split=False, **options):
    """Run diffusers' loop and ``ip.sample`` on the scheduler's 10 times; ``wrong`` overrides
    some of our arguments (``den`` a function of the denoiser) and must land far away."""
    x1 = _noise() if x1 is None else x1
    grid = diffusers_grid(sched, 10)
    with torch.no_grad():
        theirs = _loop(sched, model, x1, their_cond, split)
        den = from_diffusers(model, sched)
        ours = ip.sample(den, x1, solver, grid=grid, cond=cond, **options)
        bad = {"solver": solver, "cond": cond, **options, **wrong}
        other = bad.pop("den", lambda d: d)(den)
        far = ip.sample(other, x1, bad.pop("solver"), grid=grid, **bad)
    _check(name, ours, theirs, far)
    return den, grid


def _off_by_one(den):
    """The same Denoiser with the network called at ``t N`` instead of ``t N - 1``."""
    net = den.model
    return ip.Denoiser(DiffusersNet(net.model, net.num_train_timesteps, 0.0), den.path,
                       den.prediction)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_ddim(prediction):
    sched = diffusers.DDIMScheduler(**BETAS, prediction_type=prediction, set_alpha_to_one=False,
                                    timestep_spacing="trailing", clip_sample=False)
    den, grid = _parity(f"ddim-{prediction}", sched, _unet(), "ddim", {"den": _off_by_one})
    assert grid[-1] == pytest.approx(1e-3, rel=1e-6)  # ends at alphas_cumprod[0]
    assert den.prediction == {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}[prediction]
    assert den.nfe == 10


def test_euler_discrete():
    """diffusers' Euler works on ``x / alpha`` in ``sigma / alpha`` (scale_model_input gives the
    network ``x``); that is DDIM, and its last step to sigma = 0 is ``denoise_to_zero``."""
    sched = diffusers.EulerDiscreteScheduler(**BETAS, timestep_spacing="leading", steps_offset=1)
    unet, x1 = _unet(), _noise()
    grid = diffusers_grid(sched, 10)
    assert len(grid) == 10  # no end time: the last step goes to zero noise
    with torch.no_grad():
        # diffusers starts at x~ = sigma~ noise, which is x = alpha x~ = sigma noise: not unit
        x_start = x1 * _start_scale(sched, grid[0])
        theirs = _loop(sched, unet, x1)
        den = from_diffusers(unet, sched)
        ours = ip.sample(den, x_start, "euler-ancestral", grid=grid, eta=0.0,
                         denoise_to_zero=True)
        other = ip.sample(den, x_start, "ddim", grid=grid, denoise_to_zero=True)
        wrong = ip.sample(den, x_start, "ddim", grid=grid)
    _check("euler-discrete", ours, theirs, wrong)
    _check("euler-discrete(ddim)", other, theirs)


def _start_scale(sched, t):
    """Our x for diffusers' x~ = init_noise_sigma * noise at time t: x = alpha x~."""
    path = ip.paths.VPDiscrete(sched.alphas_cumprod.double())
    return float(sched.init_noise_sigma) * path.alpha(float(t))


@pytest.mark.parametrize(("prediction", "final"), [("epsilon", "sigma_min"),
                                                   ("v_prediction", "sigma_min"),
                                                   ("epsilon", "zero")])
def test_dpmsolver_multistep_2m(prediction, final):
    """With diffusers' default ``final_sigmas_type="zero"`` its last step goes to zero noise
    with first order (the data prediction): the grid ends at its last time and
    ``denoise_to_zero`` takes that step; it is the lowered final step, so the steps before it
    keep their order (``lower_order_final=False``)."""
    sched = diffusers.DPMSolverMultistepScheduler(
        **BETAS, prediction_type=prediction, algorithm_type="dpmsolver++", solver_order=2,
        final_sigmas_type=final)
    _, grid = _parity(f"dpm++2m-{prediction}-{final}", sched, _unet(), "dpm++2m",
                      {"solver": "dpm++3m"}, denoise_to_zero=final == "zero",
                      lower_order_final=final != "zero")
    assert len(grid) == (10 if final == "zero" else 11)


def test_unipc():
    sched = diffusers.UniPCMultistepScheduler(**BETAS, solver_order=2, solver_type="bh2",
                                              final_sigmas_type="sigma_min")
    _parity("unipc-bh2", sched, _unet(), "unipc", {"corrector": False}, order=2, variant="bh2")


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_match_euler_with_shift(shift):
    """Flow matching: path Linear with t = sigma, the network's output noise - x0 is our
    velocity, and the shift only places the grid: sigma = shift s / (1 + (shift - 1) s)."""
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    unet, x1 = _unet(), _noise()
    grid = diffusers_grid(sched, 8)
    # diffusers spaces s evenly from 1 to its smallest training sigma, then shifts
    s = torch.linspace(1.0, shift_time(1e-3, shift), 8, dtype=torch.float64)
    torch.testing.assert_close(grid[:-1], shift_time(s, shift), rtol=1e-6, atol=0)
    assert grid[-1] == 0.0
    with torch.no_grad():
        theirs = _loop(sched, unet, x1)
        den = from_diffusers(unet, sched)
        assert isinstance(den.path, ip.paths.Linear) and den.prediction == "velocity"
        ours = ip.sample(den, x1, "euler", grid=grid)
        unshifted = ip.sample(den, x1, "euler", grid=torch.cat([s, s.new_zeros(1)]))
    _check(f"flow-euler-shift{shift:g}", ours, theirs, None if shift == 1 else unshifted)


def test_flow_match_heun():
    sched = diffusers.FlowMatchHeunDiscreteScheduler(shift=2.0)
    sched.set_timesteps(6)
    unet, x1 = _unet(), _noise()
    with torch.no_grad():
        theirs = _loop(sched, unet, x1)
        den = from_diffusers(unet, sched)
        grid = diffusers_grid(diffusers.FlowMatchEulerDiscreteScheduler(shift=2.0), 6)
        ours = ip.sample(den, x1, "heun", grid=grid)
        wrong = ip.sample(den, x1, "euler", grid=grid)
    assert den.nfe == 2 * 6 - 1 + 6  # heun skips the corrector into sigma = 0; then euler
    _check("flow-heun", ours, theirs, wrong)


def test_unet2d_condition_with_encoder_hidden_states():
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        in_channels=3, out_channels=3, **TINY, cross_attention_dim=12, attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")).eval()
    sched = diffusers.DDIMScheduler(**BETAS, set_alpha_to_one=False, timestep_spacing="trailing",
                                    clip_sample=False)
    text = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(2))
    _parity("unet2d-condition-ddim", sched, unet, "ddim", {"cond": text.flip(0)}, cond=text,
            their_cond={"encoder_hidden_states": text})


def _dit():
    torch.manual_seed(0)
    return diffusers.DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=3, out_channels=6,
        num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=10).eval()


def test_dit_with_class_labels_and_null_label():
    dit = _dit()
    sched = diffusers.DPMSolverMultistepScheduler(**BETAS, solver_order=2,
                                                  final_sigmas_type="sigma_min")
    labels = torch.tensor([3, NULL_LABEL, 7])  # NULL_LABEL is DiT's null class, 10
    _parity("dit-dpm++2m", sched, dit, "dpm++2m", {"cond": {"labels": labels.flip(0)}},
            x1=_noise(3), cond=labels, their_cond={"class_labels": torch.tensor([3, 10, 7])},
            split=True)


@pytest.mark.parametrize("scheduler", ["DDPMScheduler", "FlowMatchEulerDiscreteScheduler"])
def test_every_solver_samples_a_diffusers_model(scheduler):
    """Each solver of the library runs on the wrapped model with its default grid: the right
    shape, finite values, and the network counted."""
    den = from_diffusers(_unet(), getattr(diffusers, scheduler)())
    x1 = _noise(1)
    for solver in ip.solvers.available():
        den.nfe = 0
        with torch.no_grad():
            out = ip.sample(den, x1, solver, steps=4, generator=torch.Generator().manual_seed(0))
        assert out.shape == x1.shape and torch.isfinite(out).all() and den.nfe >= 2, solver


def test_classifier_free_guidance_on_dit_is_the_dit_pipeline_formula():
    """ip.guidance.CFG on the wrapped DiT gives DiTPipeline's guided eps: one batch of
    conditional and null-class inputs, ``eps_u + w (eps_c - eps_u)`` on the mean channels."""
    dit, x = _dit(), _noise()
    sched = diffusers.DDPMScheduler(**BETAS)
    den = from_diffusers(dit, sched)
    assert den.model.num_classes == 10
    with torch.no_grad():
        ours = ip.guidance.CFG(den, scale=3.0)(x, 0.6, torch.tensor([1, 4]), "eps")
        out = dit(torch.cat([x, x]), timestep=torch.full((4,), 599), return_dict=False,
                  class_labels=torch.tensor([1, 4, 10, 10]))[0][:, :3]
    cond, uncond = out.chunk(2)
    theirs = uncond + 3.0 * (cond - uncond)
    assert _rel(ours, theirs) < TOL
    with pytest.raises(ip.InterpolantError, match="needs a class-conditional network"):
        ip.guidance.CFG(from_diffusers(_unet(), sched))


def test_from_a_config_dict_or_a_saved_config_and_errors(tmp_path):
    sched = diffusers.DDIMScheduler(**BETAS, prediction_type="v_prediction")
    sched.save_config(tmp_path)
    unet = _unet()
    for source in (dict(sched.config), tmp_path, tmp_path / "scheduler_config.json"):
        den = from_diffusers(unet, source)
        assert den.prediction == "v"
        torch.testing.assert_close(den.path.alphas_cumprod, sched.alphas_cumprod.double(),
                                   rtol=0, atol=0)
    flow = from_diffusers(unet, {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0})
    assert isinstance(flow.path, ip.paths.Linear)
    with pytest.raises(ip.InterpolantError, match="unknown diffusers prediction_type 'flow'"):
        from_diffusers(unet, {**sched.config, "prediction_type": "flow"})
    with pytest.raises(ip.InterpolantError, match="no scheduler_config.json"):
        from_diffusers(unet, tmp_path / "nothing")
    with pytest.raises(ip.InterpolantError, match="no 'no label' class"):
        from_diffusers(_unet(num_class_embeds=4), sched)(_noise(), 0.5, torch.tensor([0, -1]))


def test_zz_report_parity_figures(capsys):
    """Print the max |ours - diffusers| of the tests above (``pytest -s`` shows them)."""
    with capsys.disabled():
        for name, (diff, rel) in sorted(FIGURES.items()):
            print(f"\n  parity {name}: max abs diff {diff:.2e} ({rel:.1e} of max |x|)", end="")


def test_timestep_mapping_follows_training_indices():
    """t = (k + 1) / N reaches the network as the integer k, in float32 as in float64; times
    between indices stay continuous; flow matching passes sigma N."""
    net = DiffusersNet(_unet(), 1000, -1.0)
    k = torch.tensor([0, 1, 499, 998, 999])
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(net.timestep((k + 1).to(dtype) / 1000), k.float())
    mid = net.timestep(torch.tensor([0.5005], dtype=torch.float64))
    assert mid.item() == pytest.approx(499.5, abs=1e-4)
    flow = DiffusersNet(_unet(), 1000, 0.0)
    assert flow.timestep(torch.tensor([0.25])).item() == 250.0


def test_load_a_saved_pipeline_folder(tmp_path):
    """A DDPM pipeline written by save_pretrained loads back offline: same network, same path."""
    unet = _unet()
    sched = diffusers.DDPMScheduler(**BETAS, prediction_type="v_prediction")
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path)
    den = ip.interop.load_diffusers(tmp_path)
    assert den.prediction == "v" and not den.model.training
    x, t = _noise(), torch.tensor([0.3, 0.9])
    with torch.no_grad():
        expected = from_diffusers(unet, sched)(x, t, target="eps")
        torch.testing.assert_close(den(x, t, target="eps"), expected, rtol=0, atol=0)
    with pytest.raises(ip.InterpolantError, match="holds no diffusers model"):
        ip.interop.load_diffusers(tmp_path / "scheduler")
