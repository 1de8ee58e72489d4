"""Forward processes beyond the Gaussian path, from the seed papers, each on the library's
sampling and training machinery:

* :mod:`.nonequilibrium`: bound training of a learned mean-and-variance reverse kernel
  (Sohl-Dickstein et al. 2015), on the bound of :mod:`interpolant.training.vlb`;
* :mod:`.pfgmpp`: PFGM++'s augmented-dimension kernel, prior and EDM-style training
  (Xu et al. 2023); sampling with EDM's solvers;
* :mod:`.cold`: cold diffusion's degradations and samplers (Bansal et al. 2022);
* :mod:`.residual`: residual-plus-noise restoration processes (ResShift, RDDM) as
  :class:`interpolant.paths.Interpolant`;
* :mod:`.restoration`: training cold diffusion's restoration operator and RDDM's residual
  and noise networks;
* :mod:`.curvature`: trajectory curvature and kinetic energy under couplings (Lee et al.
  2023; Shaul et al. 2023) and alpha-(de)blending (Heitz et al. 2023).
"""

from . import cold, curvature, nonequilibrium, pfgmpp, residual, restoration

__all__ = ["cold", "curvature", "nonequilibrium", "pfgmpp", "residual", "restoration"]
