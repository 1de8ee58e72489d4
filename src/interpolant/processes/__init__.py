"""Forward processes beyond the Gaussian path, from the seed papers: learned-kernel bound
training (Sohl-Dickstein et al. 2015), PFGM++ (Xu et al. 2023), cold diffusion (Bansal et al.
2022), residual restoration processes (RDDM, ResShift), and trajectory curvature and
alpha-(de)blending (Lee et al. 2023; Heitz et al. 2023)."""
