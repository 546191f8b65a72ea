"""BPFA inpainting: beta process factor analysis of image patches, by Gibbs sampling.

The dictionary-learning inpainting of Zhou, Chen, Paisley, Ren, Li, Sapiro
and Carin, "Nonparametric Bayesian dictionary learning for analysis of noisy
and incomplete images", IEEE TIP 21(1), 2012, one of the classical operators
that Dai et al. (2020) combine with their NetM masks and that the paper's
Table 2 lists ("BPFA [37]"). numpy and numba only (no TensorFlow).

Model. Every overlapping p x p patch (stride 1 by default; for colour the
patches of all channels are stacked, P = p * p * C entries) is a sparse
combination of K dictionary atoms, observed only on its known pixels:

    x_i = D (z_i o s_i) + eps_i,        d_k ~ N(0, I / P),
    s_ik ~ N(0, 1 / gamma_s),           z_ik ~ Bernoulli(pi_k),
    pi_k ~ Beta(a / K, b (K - 1) / K),  gamma_s, gamma_eps ~ Gamma(1e-6, 1e-6),
    eps_i ~ N(0, I / gamma_eps).

Sampler. One iteration is a systematic Gibbs scan, atom by atom as in the
"DkZkSk" option of Zhou et al.'s public MATLAB code
(``SampleDZS_MissingData``): for every atom k the pairs (z_ik, s_ik) of all
patches, then d_k, then pi_k; after all atoms gamma_s and gamma_eps. Every
conditional uses only the observed entries of each patch (the residual is
stored for those entries only, so the cost grows with the number of known
pixels, not with the image size times P). Two deliberate differences from
that code, both exact Gibbs steps of the same model:

* (z_ik, s_ik) is drawn as a block with s_ik integrated out of z_ik's
  conditional (their code's comments mention this "collapsed" variant; it
  avoids proposing z_ik = 1 with a prior draw of s_ik). Inactive s_ik then
  never enter the likelihood, so gamma_s is drawn from the active ones.
* Within an atom, (z_k, s_k) comes before d_k, so that the start below (all
  z = 0, atoms = principal components) keeps its atoms in the first scan.

Hyperparameters as in Zhou et al.'s code for its SVD start: a = 1,
b = N / 8 (N the number of patches), 1e-6 for all gamma priors; the known
values are centred on their per-channel mean first (their ``IsSubMean``),
since the model's coefficients have mean zero. The sampled gamma_s and
gamma_eps are floored at 1e-10 (a vague-prior draw underflows to 0 when no
atom is in use, e.g. for a constant image).

Start (``init="diffusion"``, the default): the atoms are the leading
principal components of the patches of the homogeneous diffusion inpainting
(``wgimask.diffusion.inpainting.inpaint``), the rest (if K > P) prior
draws; all z = 0. ``init="random"`` draws every atom from its prior. The
sampler itself sees the known pixels only, but within the iterations
affordable here the chain does not forget its start: from random atoms it
ends about 5 dB lower (table below), so the diffusion start matters.

Output: the average, over the last ``samples`` iterations, of the patch
reconstructions D (z o s) averaged over all patches covering a pixel, plus
the mean; known pixels are then set back to the input exactly (the
convention of all inpainting operators here). Images smaller than the patch
use a patch of the image's smaller side instead. Memory: about 9 K bytes per
patch for z and s (0.45 GB for a 768 x 512 photo with K = 128).

Settings of Dai et al. (2020): 8 x 8 patches with the public BPFA code;
their K and number of iterations are not given. (Zhou et al.'s denoising
demo uses K = 256; a later public BPFA inpainting version by Z. Xing and
E. Monier defaults to K = 128, 100 iterations; which one Dai et al. ran is
not known here.) The defaults below were chosen by
``python -m benchmarks.studies.bpfa_parameters`` on 64 x 64 training crops
of ``skimage.data`` photos (astronaut, chelsea, coffee, rocket; no
evaluation images):

    patch_size 8, atoms 64, iterations 60, samples 20.

Patch 8 is kept for fidelity to Dai et al. although 10 measured better.
More atoms or iterations did not help (<= 0.03 dB) at 2 to 3 times the
time; 30 iterations lose only 0.02 dB.

Measured (CPU: Intel(R) Xeon(R) Processor, one core of a shared 2-core
machine, so the seconds vary by up to 2x with the load; 8 colour crops of
64 x 64 px, random masks, the same masks for diffusion; mean PSNR in dB;
s/crop = seconds per crop averaged over the densities; pN = patch N x N,
KN = N atoms, itN = N iterations, sN = N samples averaged):

    | setting                         | 5%    | 10%   | 20%   | mean  | s/crop |
    |---------------------------------|-------|-------|-------|-------|--------|
    | homogeneous diffusion           | 29.30 | 30.96 | 32.87 | 31.05 | 0.01   |
    | p8 K64 it60 s20 (default)       | 28.79 | 31.26 | 33.72 | 31.26 | 0.70   |
    | p8 K64 it30 s10                 | 28.81 | 31.24 | 33.67 | 31.24 | 0.35   |
    | p8 K128 it60 s20                | 28.79 | 31.22 | 33.63 | 31.22 | 1.19   |
    | p8 K64 it150 s50                | 28.79 | 31.30 | 33.78 | 31.29 | 1.81   |
    | p6 K64 it60 s20                 | 27.36 | 30.84 | 33.48 | 30.56 | 0.56   |
    | p10 K64 it60 s20                | 29.39 | 31.38 | 33.86 | 31.54 | 1.26   |
    | p8 K64 it60 s20, random start   | 22.56 | 25.03 | 29.57 | 25.72 | 1.25   |
    | p8 K128 it150 s50, random start | 22.88 | 25.41 | 29.64 | 25.98 | 6.73   |

With the defaults one 64 x 64 colour crop takes about 0.5 to 2.5 s (5 to
20 % density) and a 256 x 256 colour image 19 to 65 s (both measured at a
load of 4 to 5 on the 2 cores, so probably about half that on an idle core).

As in the literature (the paper's Table 2 reports BPFA at 15.82 dB against
20.22 dB for CDD at 5 % with NetM masks), BPFA is worse than homogeneous
diffusion at 5 % density here too (-0.5 dB): an 8 x 8 patch then holds
about three known pixels, too few to fit its coefficients, and patches
without any known pixel are filled by draws from the prior, which the
averaging only partly removes. At 10 and 20 % it is 0.3 and 0.85 dB better.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wgimask.arrays import as_image, as_known_mask, result_dtype
from wgimask.diffusion.inpainting import inpaint
from wgimask.diffusion.jit import jit, jit_sum

__all__ = [
    "DEFAULT_ATOMS",
    "DEFAULT_ITERATIONS",
    "DEFAULT_PATCH_SIZE",
    "DEFAULT_SAMPLES",
    "INITS",
    "BPFAInfo",
    "inpaint_bpfa",
]

#: Patch width and height p (Dai et al. and Zhou et al. use 8).
DEFAULT_PATCH_SIZE = 8
#: Dictionary size K.
DEFAULT_ATOMS = 64
#: Gibbs iterations (full scans), burn-in included.
DEFAULT_ITERATIONS = 60
#: The last this many iterations are averaged into the output.
DEFAULT_SAMPLES = 20
#: Accepted values of ``init``.
INITS = ("diffusion", "random")

# Hyperparameters of the gamma priors (Zhou et al.: c0 = d0 = e0 = f0).
_GAMMA_PRIOR = 1e-6
# Floor of the sampled precisions gamma_s and gamma_eps (see _sweep).
_MIN_PRECISION = 1e-10


@dataclass(frozen=True)
class BPFAInfo:
    """Diagnostics of one run of ``inpaint_bpfa``.

    Attributes:
        rmse: per iteration, the root mean square residual of the current
            sample over the observed entries of all patches (a known pixel
            counts once per patch covering it); shape (iterations,).
        noise_std: per iteration, the sampled noise level 1 / sqrt(gamma_eps).
        active: per iteration, the mean number of atoms used per patch.
        patch_size: the patch width used (smaller than asked for images
            smaller than the patch).
        atoms: the dictionary size K.
        patches: the number of patches N.
        seconds: wall-clock time of the whole call.
    """

    rmse: np.ndarray
    noise_std: np.ndarray
    active: np.ndarray
    patch_size: int
    atoms: int
    patches: int
    seconds: float


# ---------------------------------------------------------------------------
# Compiled kernels. Patch i's observed pixels are entries ptr[i]:ptr[i+1] of
# `off` (pixel offset dy * p + dx inside the patch); `r` holds the residual of
# those entries, one column per channel. The mask is shared by the channels,
# so a patch's observed entries are whole pixels.


@jit_sum
def _sweep(rng, ptr, off, r, d, z, s, pi, gs, ge, a, b, nz_out):
    """One Gibbs scan over all atoms; returns (gamma_s, gamma_eps, sse).

    z and s are stored atom-major, (K, N), so that the per-atom passes read
    them contiguously.
    """
    n = ptr.size - 1
    k_atoms, q, c_ch = d.shape
    p_dim = q * c_ch
    num = np.zeros((q, c_ch))
    den = np.zeros(q)
    dn = np.zeros(q)
    for k in range(k_atoms):
        dk = d[k]
        zk = z[k]
        sk = s[k]
        # Residual without atom k (r^{-k}) on the patches that use it.
        for i in range(n):
            if zk[i]:
                sik = sk[i]
                for t in range(ptr[i], ptr[i + 1]):
                    o = off[t]
                    for c in range(c_ch):
                        r[t, c] += dk[o, c] * sik
        logit_pi = np.log(max(pi[k], 1e-300)) - np.log(max(1.0 - pi[k], 1e-300))
        num[:, :] = 0.0
        den[:] = 0.0
        # Squared norm of every pixel of the atom, summed over the channels.
        for o in range(q):
            acc = 0.0
            for c in range(c_ch):
                acc += dk[o, c] * dk[o, c]
            dn[o] = acc
        # (z_ik, s_ik) given the rest, s_ik integrated out of z_ik's odds:
        # p(z=1)/p(z=0) = pi/(1-pi) * sqrt(gs/lam) * exp(0.5 * lam * mu^2).
        for i in range(n):
            dd = 0.0
            dr = 0.0
            for t in range(ptr[i], ptr[i + 1]):
                o = off[t]
                dd += dn[o]
                for c in range(c_ch):
                    dr += dk[o, c] * r[t, c]
            lam = gs + ge * dd
            mu = ge * dr / lam
            odds = logit_pi + 0.5 * np.log(gs / lam) + 0.5 * lam * mu * mu
            # Stable logistic function of the log odds.
            if odds >= 0.0:
                p1 = 1.0 / (1.0 + np.exp(-odds))
            else:
                e = np.exp(odds)
                p1 = e / (1.0 + e)
            if rng.random() < p1:
                sik = mu + rng.standard_normal() / np.sqrt(lam)
                zk[i] = True
                sk[i] = sik
                for t in range(ptr[i], ptr[i + 1]):
                    o = off[t]
                    den[o] += sik * sik
                    for c in range(c_ch):
                        num[o, c] += sik * r[t, c]
            else:
                zk[i] = False
                sk[i] = 0.0
        # d_k given the rest: independent normals per entry, with precision
        # P (prior) + gamma_eps * sum of s_ik^2 over the patches observing it.
        for o in range(q):
            prec = p_dim + ge * den[o]
            for c in range(c_ch):
                dk[o, c] = ge * num[o, c] / prec + rng.standard_normal() / np.sqrt(prec)
        used = 0
        for i in range(n):
            if zk[i]:
                used += 1
                sik = sk[i]
                for t in range(ptr[i], ptr[i + 1]):
                    o = off[t]
                    for c in range(c_ch):
                        r[t, c] -= dk[o, c] * sik
        nz_out[k] = used
        pi[k] = rng.beta(a / k_atoms + used, b * (k_atoms - 1) / k_atoms + n - used)
    # gamma_s from the active coefficients (s_ik of inactive atoms are
    # integrated out), gamma_eps from the residual of the observed entries.
    n_active = 0
    ss = 0.0
    for k in range(k_atoms):
        for i in range(n):
            if z[k, i]:
                n_active += 1
                ss += s[k, i] * s[k, i]
    gs = rng.gamma(_GAMMA_PRIOR + 0.5 * n_active, 1.0 / (_GAMMA_PRIOR + 0.5 * ss))
    # With no atom in use (a constant image) this is a draw from the vague
    # Gamma(1e-6, 1e-6) prior, which underflows to 0 and would divide by zero
    # on patches without known pixels; the floor keeps the Occam factor
    # sqrt(gs / lam) tiny, so atoms stay off until the data need them.
    gs = max(gs, _MIN_PRECISION)
    sse = 0.0
    for t in range(r.shape[0]):
        for c in range(c_ch):
            sse += r[t, c] * r[t, c]
    n_obs = r.shape[0] * c_ch
    ge = max(
        rng.gamma(_GAMMA_PRIOR + 0.5 * n_obs, 1.0 / (_GAMMA_PRIOR + 0.5 * sse)),
        _MIN_PRECISION,
    )
    return gs, ge, sse


@jit
def _accumulate(acc, ys, xs, p, d, z, s):
    """Adds every patch's reconstruction D (z_i o s_i) to the image sum."""
    n = ys.size
    k_atoms, _, c_ch = d.shape
    for k in range(k_atoms):
        dk = d[k]
        for i in range(n):
            if z[k, i]:
                sik = s[k, i]
                y0 = ys[i]
                x0 = xs[i]
                for dy in range(p):
                    for dx in range(p):
                        o = dy * p + dx
                        for c in range(c_ch):
                            acc[y0 + dy, x0 + dx, c] += dk[o, c] * sik


# ---------------------------------------------------------------------------
# Argument checks and set-up (numpy).


def _int_param(name: str, value, minimum: int) -> int:
    """Checks an integer parameter >= minimum and returns it as int."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive_float(name: str, value) -> float:
    """Checks a finite positive number and returns it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if isinstance(value, bool) or not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return v


def _starts(length: int, p: int, stride: int) -> np.ndarray:
    """Patch start positions along one axis: every stride-th, plus the last."""
    starts = np.arange(0, length - p + 1, stride)
    # The last patch is always included so that every pixel is covered.
    if starts[-1] != length - p:
        starts = np.append(starts, length - p)
    return starts


def _principal_atoms(
    u: np.ndarray, ys: np.ndarray, xs: np.ndarray, p: int, rng: np.random.Generator
) -> np.ndarray:
    """Unit-norm principal components of the patches of u, largest first.

    ys, xs are the patches' top-left corners, one entry per patch.
    """
    c = u.shape[2]
    # A sample of patches is enough for the start and bounds the memory on
    # large images (all patches of a photo would take gigabytes).
    if ys.size > 20000:
        pick = np.sort(rng.choice(ys.size, 20000, replace=False))
        ys, xs = ys[pick], xs[pick]
    windows = np.lib.stride_tricks.sliding_window_view(u, (p, p), axis=(0, 1))
    # windows[y, x] is (C, p, p); rows in the (dy, dx, c) order of D.
    rows = windows[ys, xs].transpose(0, 2, 3, 1).reshape(-1, p * p * c)
    _, vecs = np.linalg.eigh(rows.T @ rows)
    return vecs[:, ::-1].T.copy()


def inpaint_bpfa(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    patch_size: int = DEFAULT_PATCH_SIZE,
    atoms: int = DEFAULT_ATOMS,
    iterations: int = DEFAULT_ITERATIONS,
    samples: int = DEFAULT_SAMPLES,
    stride: int = 1,
    seed: int = 0,
    init: str = "diffusion",
    a: float = 1.0,
    b: float | None = None,
    progress: Callable[[int, int], object] | None = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, BPFAInfo]:
    """BPFA inpainting of an image from a binary mask (Zhou et al., 2012).

    Learns a sparse patch dictionary from the known pixels alone by Gibbs
    sampling the beta process factor analysis model (see the module
    docstring) and fills the unknown pixels with the averaged patch
    reconstructions.

    Args:
        image: (H, W) or (H, W, C) array, values usually in [0, 1].
        mask: (H, W) binary array (bool, or 0/1 numbers); True/1 marks a
            known pixel.
        patch_size: patch width and height p, an integer >= 1; images with a
            side smaller than p use patches of that side instead.
        atoms: dictionary size K, an integer >= 1.
        iterations: number of Gibbs scans, an integer >= 1.
        samples: the last this many scans are averaged into the output, an
            integer in [1, iterations].
        stride: distance between patch starts, an integer >= 1 (1: all
            overlapping patches; the last row and column of patches are
            always included).
        seed: non-negative integer; equal seeds give equal outputs.
        init: ``"diffusion"`` (atoms start as principal components of the
            patches of the homogeneous diffusion inpainting) or ``"random"``
            (atoms drawn from their prior).
        a: beta process parameter a > 0 of pi_k ~ Beta(a/K, b(K-1)/K).
        b: beta process parameter b > 0; None means N / 8 (N patches), as in
            Zhou et al.'s code.
        progress: optional callable(iteration, total) called after every
            scan (iteration counts from 1).
        return_info: if True, return ``(u, info)`` with a ``BPFAInfo``.

    Returns:
        The inpainted image, same shape as ``image`` (float32 for a float32
        image, float64 otherwise; values not clipped), known pixels equal to
        the input exactly; with ``return_info`` the pair ``(u, info)``.

    Raises:
        ValueError: for a bad image, a mask of another size, a non-binary or
            empty mask, or a parameter outside its range (the message shows
            the value received).
    """
    start_time = time.perf_counter()
    patch_size = _int_param("patch_size", patch_size, 1)
    atoms = _int_param("atoms", atoms, 1)
    iterations = _int_param("iterations", iterations, 1)
    samples = _int_param("samples", samples, 1)
    if samples > iterations:
        raise ValueError(
            f"samples must be <= iterations ({iterations}), got {samples!r}"
        )
    stride = _int_param("stride", stride, 1)
    seed = _int_param("seed", seed, 0)
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    a = _positive_float("a", a)
    if b is not None:
        b = _positive_float("b", b)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be callable or None, got {progress!r}")

    f, was_2d = as_image(image)
    h, w, c = f.shape
    known = as_known_mask(mask, (h, w), "BPFA inpainting")
    out_dtype = result_dtype(image)

    p = min(patch_size, h, w)
    q = p * p
    ys0 = _starts(h, p, stride)
    xs0 = _starts(w, p, stride)
    ys = np.repeat(ys0, xs0.size)
    xs = np.tile(xs0, ys0.size)
    n = ys.size
    if b is None:
        b = n / 8.0

    # Centre on the known values' mean: the coefficients have mean zero.
    mean = f[known].mean(axis=0)
    y = f - mean

    # Observed entries of every patch, patch by patch (CSR layout).
    kwin = np.lib.stride_tricks.sliding_window_view(known, (p, p))
    kpatch = kwin[ys0][:, xs0].reshape(n, q)
    pidx, off = np.nonzero(kpatch)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pidx, minlength=n), out=ptr[1:])
    off = off.astype(np.int64)
    r = y[ys[pidx] + off // p, xs[pidx] + off % p].copy()  # (nnz, C)

    rng = np.random.default_rng(seed)
    d = rng.standard_normal((atoms, q, c)) / np.sqrt(q * c)
    if init == "diffusion" and known.sum() < h * w:
        u0 = inpaint(f, known) - mean
        pcs = _principal_atoms(u0, ys, xs, p, rng)
        m = min(atoms, pcs.shape[0])
        d[:m] = pcs[:m].reshape(m, q, c)

    # Start: no atom in use, noise at 10 % of the data's spread and
    # coefficients at the scale of a whole patch; both are redrawn from
    # their conditionals after the first scan.
    spread = max(float(np.std(r)), 1e-3)
    ge = 1.0 / (0.1 * spread) ** 2
    gs = 1.0 / (q * c * spread**2)
    z = np.zeros((atoms, n), dtype=np.bool_)
    s = np.zeros((atoms, n))
    pi = np.full(atoms, 0.5 / atoms)
    used = np.zeros(atoms, dtype=np.int64)

    rmse = np.empty(iterations)
    noise_std = np.empty(iterations)
    active = np.empty(iterations)
    acc = np.zeros((h, w, c))
    n_obs = max(r.size, 1)
    for it in range(iterations):
        gs, ge, sse = _sweep(rng, ptr, off, r, d, z, s, pi, gs, ge, a, b, used)
        rmse[it] = np.sqrt(sse / n_obs)
        noise_std[it] = 1.0 / np.sqrt(ge)
        active[it] = used.sum() / n
        if it >= iterations - samples:
            _accumulate(acc, ys, xs, p, d, z, s)
        if progress is not None:
            progress(it + 1, iterations)

    # Number of patches covering each pixel (at least one, see _starts).
    cover = np.zeros((h + 1, w + 1))
    np.add.at(cover, (ys, xs), 1.0)
    np.add.at(cover, (ys + p, xs), -1.0)
    np.add.at(cover, (ys, xs + p), -1.0)
    np.add.at(cover, (ys + p, xs + p), 1.0)
    cover = cover.cumsum(axis=0).cumsum(axis=1)[:h, :w]
    u = acc / (samples * cover[:, :, None]) + mean
    u[known] = f[known]
    if was_2d:
        u = u[:, :, 0]
    u = u.astype(out_dtype, copy=False)
    if not return_info:
        return u
    info = BPFAInfo(
        rmse=rmse,
        noise_std=noise_std,
        active=active,
        patch_size=p,
        atoms=atoms,
        patches=n,
        seconds=time.perf_counter() - start_time,
    )
    return u, info
