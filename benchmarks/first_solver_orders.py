"""Convergence table of the first samplers (ddim, euler, heun): median endpoint error against
the exact probability-flow map at 20/40/80 steps and the fitted order, on the cases of
``tests/test_samplers_first.py``. Run ``.venv/bin/python benchmarks/first_solver_orders.py``.
"""
import torch, math, interpolant as ip
torch.set_num_threads(1)
GMM = ip.oracle.GaussianMixture
cases = [("aniso2d","vp-linear","logsnr"),("mix8d","vp-linear","logsnr"),("aniso2d","edm","karras"),("mix8d","linear","uniform")]
print("| preset | path | grid | solver | median err @20 | @40 | @80 | fitted order |")
print("|---|---|---|---|---|---|---|---|")
for preset, pn, grid in cases:
    gmm, path = GMM.preset(preset), ip.paths.get(pn)
    x1 = gmm.marginal(path, 1.0).sample(200, torch.Generator().manual_seed(0))
    ref = gmm.flow(path, x1, 1.0, path.t_min)
    den = gmm.denoiser(path)
    for s in ["ddim","euler","heun"]:
        e = [float((ip.sample(den, x1, solver=s, steps=n, grid=grid)-ref).norm(dim=1).median()) for n in (20,40,80)]
        ls = torch.log(torch.tensor([20.,40.,80.],dtype=torch.float64)); le = torch.log(torch.tensor(e,dtype=torch.float64))
        ls = ls-ls.mean(); order = float(-(ls*(le-le.mean())).sum()/(ls*ls).sum())
        print(f"| {preset} | {pn} | {grid} | {s} | {e[0]:.2e} | {e[1]:.2e} | {e[2]:.2e} | {order:.2f} |")
