"""``interpolant invert``: a real image to its noise, and back.

``--index i`` (a held-out image of the run) or ``--image FILE`` (a PNG of the run's size, or a
``.safetensors`` holding one image in ``[-1, 1]`` under ``image``) is inverted with ``--method``
(the exact inversions ``bdia`` and ``edict``, or DDIM inversion with any deterministic solver,
``ddim``, ``heun``, ``dpm++2m``, ...) on ``--steps`` steps or an explicit increasing ``--grid``;
the latent goes to ``NAME.safetensors`` and the picture (original, reconstruction) to
``NAME.png``, with the reconstruction PSNR. ``--to INDEX`` also interpolates to a second
held-out image: the slerp of the two DDIM inversions (unconditional, the null label), sampled
back (``--frames`` pictures).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXACT = ("bdia", "edict")


def add_parser(sub: Any, fmt: type) -> None:
    p = sub.add_parser("invert", formatter_class=fmt, help="invert a real image to its noise "
                       "and reconstruct it (PSNR); interpolate two real images")
    p.add_argument("--run-dir", required=True, type=Path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", type=int, help="held-out image to invert")
    src.add_argument("--image", type=Path, help="a PNG of the run's size, or .safetensors")
    p.add_argument("--method", default="ddim", help="bdia, edict (exact) or a deterministic "
                   "solver for DDIM inversion: ddim, heun, dpm++2m, ...")
    p.add_argument("--steps", type=int, default=50, help="steps each way")
    p.add_argument("--grid", help="explicit increasing times 't0,t1,...' (instead of --steps)")
    p.add_argument("--to", type=int, help="interpolate to this held-out image (slerp)")
    p.add_argument("--frames", type=int, default=7, help="interpolation pictures")
    p.add_argument("--out", type=Path, help="file stem (default RUN/inversions/NAME)")


def _image(args: argparse.Namespace, shape: tuple[int, ...]) -> Any:
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError
    from safetensors.torch import load_file

    from ..errors import InterpolantError
    from ..inversion import check_data

    file = Path(args.image)
    if not file.is_file():
        raise InterpolantError(f"--image {file} does not exist")
    if file.suffix == ".safetensors":
        x = load_file(str(file)).get("image")
        if x is None:
            raise InterpolantError(f"{file} holds no tensor named 'image'")
        x = x.float().reshape(1, *x.shape[-len(shape):]) if x.ndim >= len(shape) else x
    else:
        try:
            picture = Image.open(file).convert("L" if shape[0] == 1 else "RGB")
        except (UnidentifiedImageError, OSError):
            raise InterpolantError(f"--image {file} is not a PNG or .safetensors image") from None
        pixels = np.asarray(picture, dtype=np.float32)
        x = torch.from_numpy(pixels / 127.5 - 1.0).reshape(1, *pixels.shape[:2], -1)
        x = x.permute(0, 3, 1, 2)
    if tuple(x.shape[1:]) != shape:
        raise InterpolantError(f"--image is {'x'.join(map(str, x.shape[1:]))} but the run's "
                               f"images are {'x'.join(map(str, shape))}; resize it first")
    return check_data(x, "--image")


def _grid(args: argparse.Namespace) -> Any:
    import torch

    from ..errors import InterpolantError

    if args.grid is None:
        return None
    try:
        return torch.tensor([float(v) for v in args.grid.split(",")], dtype=torch.float64)
    except ValueError:
        raise InterpolantError(f"--grid must be comma-separated times, got {args.grid!r}") from None


def run(args: argparse.Namespace) -> int:
    import torch
    from safetensors.torch import save_file

    from .. import images, inversion, solvers
    from ..errors import InterpolantError, unknown_name
    from ..labels import NULL_LABEL
    from .commands import _image_run, _positive
    from .pages import psnr
    from .runs import load_data, load_trained

    _positive(args.steps, "--steps")
    _positive(args.frames, "--frames")
    grid = _grid(args)
    if args.method not in EXACT and args.method not in solvers.available():
        raise unknown_name("inversion method", args.method, (*EXACT, *solvers.available()))
    if args.method in EXACT and grid is not None:
        raise InterpolantError(f"--grid is for DDIM inversion; {args.method} runs on --steps")
    run_ = load_trained(args.run_dir)
    _image_run(run_, "invert")
    den, shape = run_.denoiser, tuple(run_.shape)
    test_x, test_labels = load_data(run_.config, "test")
    for option in ("index", "to"):
        i = getattr(args, option)
        if i is not None and not 0 <= i < len(test_x):
            raise InterpolantError(f"--{option} {i} is not a held-out image: give 0.."
                                   f"{len(test_x) - 1}")
    x0 = test_x[args.index: args.index + 1] if args.image is None else _image(args, shape)
    label = None if args.image is not None or test_labels is None else \
        test_labels[args.index: args.index + 1]
    steps = None if grid is not None else args.steps
    before = den.nfe
    with torch.no_grad():
        if args.method == "bdia":
            latent = inversion.bdia_invert(den, x0, steps=steps, cond=label)
            back = inversion.bdia_sample(den, latent, steps=steps, cond=label)
        elif args.method == "edict":
            run = {"steps": steps, "cond": label, "form": "data"}  # finite where alpha = 0
            latent = inversion.edict_invert(den, x0, **run)
            back = inversion.edict_sample(den, latent, **run)[0]
        else:
            latent = (inversion.invert(den, x0, args.method, steps, cond=label, grid=grid),)
            back_grid = None if grid is None else grid.flip(0)
            back = solvers.sample(den, latent[0], args.method, steps, back_grid, cond=label)
    nfe = den.nfe - before
    name = f"{'image' if args.image is not None else f'index{args.index}'}_{args.method}"
    stem = args.out or Path(args.run_dir) / "inversions" / name
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"z{i}": z.contiguous() for i, z in enumerate(latent)},
              str(stem.with_suffix(".safetensors")))
    picture = images.save_grid(torch.cat([x0, back.clamp(-1, 1)]),
                               stem.with_suffix(".png"), nrow=2, clip=True)
    print(f"{name}: reconstruction PSNR {float(psnr(back, x0).mean()):.2f} dB, {nfe} NFE "
          f"-> {stem.with_suffix('.safetensors')} (noise), {picture} (original, "
          "reconstruction)")
    if args.to is not None:
        x_b = test_x[args.to: args.to + 1]
        null = None if test_labels is None else torch.full((1,), NULL_LABEL)  # no class
        weights = torch.linspace(0, 1, args.frames).tolist()
        with torch.no_grad():
            z = [inversion.invert(den, x, "ddim", args.steps, cond=null) for x in (x0, x_b)]
            frames = [solvers.sample(den, inversion.slerp(*z, w), "ddim", args.steps, cond=null)
                      for w in weights]
        file = images.save_grid(torch.cat([x0, *frames, x_b]).clamp(-1, 1),
                                stem.parent / f"{stem.name}_to{args.to}.png",
                                nrow=args.frames + 2, clip=True)
        print(f"interpolation to held-out image {args.to}: {args.frames} slerp frames of the "
              f"DDIM inversions -> {file}")
    return 0
