"""A U-Net of continuous-depth blocks, after "Beyond U: Making Diffusion Models Faster &
Lighter" (Calvo-Ordoñez et al. 2024): the residual blocks become ODE blocks, the features
evolving in a depth variable ``s in [0, 1]`` under the block's residual branch,

    dh/ds = F(h, emb),   h_out = h(1),   F = the ResBlock's branch (``layers.ResBlock.branch``),

integrated with ``ode_steps`` fixed steps of ``ode_method`` (``"euler"`` or ``"rk4"``) that
share the block's weights: depth comes from steps, not from parameters. A ResBlock
``h + F(h, emb)`` is one Euler step of this ODE, so with ``ode_steps=1, ode_method="euler"``
the net is the :class:`interpolant.models.UNet` of the same weights. Blocks that change the
width (the first of a level, the decoder's, which read a concatenated skip) stay ResBlocks.
"""

from __future__ import annotations

from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .layers import ResBlock
from .unet import UNet

__all__ = ["ODEResBlock", "ODEUNet", "ode_integrate"]

METHODS = ("euler", "rk4")


def ode_integrate(f, h: Tensor, steps: int, method: str = "rk4") -> Tensor:
    """``h(1)`` of ``dh/ds = f(h)`` from ``h(0) = h`` in ``steps`` equal steps (autonomous)."""
    dt = 1.0 / steps
    for _ in range(steps):
        if method == "euler":
            h = h + dt * f(h)
        else:  # classical Runge-Kutta, order 4
            k1 = f(h)
            k2 = f(h + 0.5 * dt * k1)
            k3 = f(h + 0.5 * dt * k2)
            k4 = f(h + dt * k3)
            h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return h


class ODEResBlock(ResBlock):
    """A same-width :class:`ResBlock` run as the ODE ``dh/ds = branch(h, emb)`` over
    ``s in [0, 1]`` (its state dict is the ResBlock's)."""

    def __init__(self, channels: int, emb_dim: int, dropout: float = 0.0, steps: int = 2,
                 method: str = "rk4") -> None:
        super().__init__(channels, channels, emb_dim, dropout)
        self.steps, self.method = steps, method

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return ode_integrate(lambda y: self.branch(y, emb), h, self.steps, self.method)


class ODEUNet(UNet):
    """:class:`interpolant.models.UNet` with its same-width ResBlocks as ODE blocks
    (``ode_steps`` steps of ``ode_method`` each); the other arguments are the UNet's."""

    arch = "ode-unet"

    def __init__(self, in_channels: int = 1, base_channels: int = 32,
                 channel_mults: tuple[int, ...] = (1, 2), num_res_blocks: int = 1,
                 attention_levels: tuple[int, ...] | bool = (1,),
                 num_classes: int | None = None, dropout: float = 0.0,
                 out_channels: int | None = None, ode_steps: int = 2,
                 ode_method: str = "rk4") -> None:
        if ode_method not in METHODS:
            raise unknown_name("ODE method", ode_method, METHODS)
        if not isinstance(ode_steps, int) or ode_steps < 1:
            raise InterpolantError(f"ode_steps must be a positive int, got {ode_steps!r}")
        super().__init__(in_channels, base_channels, channel_mults, num_res_blocks,
                         attention_levels, num_classes, dropout, out_channels)
        self.config.update(ode_steps=ode_steps, ode_method=ode_method)
        for stage in [*self.encoder, self.mid]:
            for i, block in enumerate(stage.res):
                width = block.conv1.out_channels
                if block.conv1.in_channels == width:
                    ode = ODEResBlock(width, block.emb.in_features, dropout, ode_steps,
                                      ode_method)
                    ode.load_state_dict(block.state_dict())  # the UNet's initialisation
                    stage.res[i] = ode
