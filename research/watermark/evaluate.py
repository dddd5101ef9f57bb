"""Evaluation of the wm.py prototype.

  python evaluate.py [--null N] [--photos a,b,...] [--quick]

Prints: per-attack exact-payload rate, overall rate, PSNR/SSIM stats, timing, the
null-distribution check (single-hypothesis z ~ N(0,1), max-z vs the union bound) and the
false-positive count on N unmarked items (photos, crops of them, synthetic images, and
pictures marked with another key)."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from multiprocessing import Pool

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage, stats
from skimage.metrics import structural_similarity

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attacks  # noqa: E402
import wm  # noqa: E402

import skimage.data  # noqa: E402

DATA = os.path.dirname(skimage.data.__file__) + "/"
PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
SIZES = [(512, 512), (1920, 1080), (1080, 1920)]
SECRET = bytes.fromhex("6b1f" * 16)
OTHER = bytes.fromhex("a5c3" * 16)
PID = "01J9ZQ4T7K3M8X2R5V6W1Y0HCD"


def synthetic(w, h, seed):
    """Flat 'generated-looking' picture: sky gradient, soft sun, plain wall, smooth hills,
    very low noise (smooth everywhere: the worst case for masking)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    c0 = rng.uniform(60, 140, 3)
    c1 = rng.uniform(150, 235, 3)
    t = yy / yy.max()
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    # sun
    sx, sy, sr = rng.uniform(0.2, 0.8) * w / max(h, w), 0.25 * h / max(h, w), 0.06
    d = np.hypot(xx - sx, yy - sy)
    img += (np.clip(1 - (d / sr) ** 2, 0, 1) ** 0.5 * 60)[..., None]
    # plain wall block on one side
    wall = (xx > 0.62 * w / max(h, w)) & (yy > 0.35 * h / max(h, w))
    img[wall] = rng.uniform(170, 215, 3)
    # smooth hills at the bottom
    x1 = xx[0]
    hill = 0.75 * h / max(h, w) + 0.05 * np.sin(x1 * 9 + rng.uniform(0, 6)) + 0.03 * np.sin(x1 * 23)
    ground = yy > hill[None, :]
    gcol = rng.uniform(40, 110, 3)
    tex = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 3) * 25
    img[ground] = gcol + tex[ground][:, None]
    img += rng.normal(0, 0.6, img.shape)  # faint render noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def load_photo(name, size):
    im = Image.open(DATA + name).convert("RGB")
    return np.asarray(ImageOps.fit(im, size, Image.LANCZOS))


def test_images(photos, sizes, n_synth):
    items = []
    for p in photos:
        for s in sizes:
            items.append((f"{p.split('.')[0]}@{s[0]}x{s[1]}", ("photo", p, s)))
    for k in range(n_synth):
        for s in sizes:
            items.append((f"synth{k}@{s[0]}x{s[1]}", ("synth", k, s)))
    return items


def materialise(spec):
    kind, a, s = spec
    return load_photo(a, s) if kind == "photo" else synthetic(s[0], s[1], 100 + a)


def run_image(args):
    name, spec, attack_names = args
    img = materialise(spec)
    payload = wm.payload_from_produce_id(SECRET, PID)
    t0 = time.perf_counter()
    marked = wm.embed(img, SECRET, PID)
    t_emb = time.perf_counter() - t0
    psnr = 10 * math.log10(255 ** 2 / max(1e-12, np.mean((marked.astype(float) - img) ** 2)))
    ssim = structural_similarity(img, marked, channel_axis=2, data_range=255)
    res = []
    for an in attack_names:
        att = attacks.ATTACKS[an](marked)
        t0 = time.perf_counter()
        d = wm.detect(att, SECRET)
        t_det = time.perf_counter() - t0
        res.append((an, d.payload == payload, d.present, d.z, d.p_value, t_det, att.shape[:2]))
    return name, spec, psnr, ssim, t_emb, res


# ----------------------------------------------------------------------- null set
def null_item(i):
    """i-th unmarked item: random crop/scale of a photo, a synthetic picture, a bundled
    grayscale/texture image, or a photo marked with ANOTHER key."""
    rng = np.random.default_rng(10_000 + i)
    kind = i % 4
    pool = PHOTOS + ["hubble_deep_field.jpg", "retina.jpg", "color.png", "horse.png",
                     "brick.png", "grass.png", "camera.png", "moon.png", "gravel.png",
                     "coins.png", "page.png", "logo.png", "motorcycle_right.png"]
    if kind == 1:
        w, h = int(rng.integers(200, 700)), int(rng.integers(200, 700))
        return synthetic(w, h, 5000 + i)
    im = np.asarray(Image.open(DATA + pool[int(rng.integers(len(pool)))]).convert("RGB"))
    s = rng.uniform(0.4, 1.6)
    h, w = im.shape[:2]
    im = np.asarray(Image.fromarray(im).resize((max(64, int(w * s)), max(64, int(h * s))),
                                               Image.BICUBIC))
    h, w = im.shape[:2]
    ch, cw = int(rng.integers(min(h, 160), h + 1)), int(rng.integers(min(w, 160), w + 1))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    im = im[y0:y0 + ch, x0:x0 + cw].copy()
    if kind == 3 and min(im.shape[:2]) >= wm.MIN_SIDE:
        im = wm.embed(im, OTHER, payload=int(rng.integers(0, 2 ** 62)))
    if rng.random() < 0.3:
        im = attacks.jpeg(int(rng.integers(50, 95)))(im)
    return im


def run_null(i):
    im = null_item(i)
    d = wm.detect(im, SECRET)
    # single fixed hypothesis (nominal lattice, no flip, shift (0,0)): must be N(0,1)
    km = wm.key_material(SECRET)
    Y = wm._box_down(wm.luma(wm.to_float_rgb(im)),
                     max(1, int(round(min(im.shape[:2]) / wm.WORK_SIDE))))
    r = wm._residual(Y)
    Pn = wm.T * wm.scale_for(*im.shape[:2]) / max(1, int(round(min(im.shape[:2]) / wm.WORK_SIDE)))
    F = wm.fold(r, np.diag([Pn, Pn]))
    Fh = np.fft.rfft2(F)[km.kr % wm.T, km.kc]
    Fh = Fh / (np.abs(Fh) + 1e-12)
    pm = km.pilot
    z0 = float(np.sum((Fh[pm] * np.exp(-1j * km.psi[pm])).real) / math.sqrt(pm.sum() / 2))
    return d.z, d.p_value, d.present, d.payload is not None, z0, d.n_hypotheses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--null", type=int, default=2000)
    ap.add_argument("--photos", default=",".join(PHOTOS))
    ap.add_argument("--synth", type=int, default=3)
    ap.add_argument("--attacks", default=",".join(attacks.ATTACKS))
    ap.add_argument("--sizes", default="512x512,1920x1080,1080x1920")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--null-only", action="store_true", help="skip the robustness table")
    ap.add_argument("--null-start", type=int, default=0, help="first null item index")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    photos = [p for p in args.photos.split(",") if p]
    attack_names = args.attacks.split(",")
    items = test_images(photos, sizes, args.synth)
    if args.null_only:
        return run_null_table(args)
    t0 = time.time()
    with Pool(args.procs) as pool:
        out = pool.map(run_image, [(n, s, attack_names) for n, s in items], chunksize=1)
    per_att = defaultdict(list)
    fails = defaultdict(list)
    psnrs, ssims, temb, tdet = [], [], defaultdict(list), defaultdict(list)
    for name, spec, psnr, ssim, te, res in out:
        psnrs.append((name, psnr))
        ssims.append((name, ssim))
        temb[spec[2]].append(te)
        for an, ok, present, z, p, td, shp in res:
            per_att[an].append(ok)
            if an == "none":
                tdet[spec[2]].append(td)
            if not ok:
                fails[an].append(f"{name}(z={z:.1f})")
    print(f"\n=== robustness: {len(items)} images x {len(attack_names)} attacks "
          f"({time.time() - t0:.0f} s) ===")
    print(f"{'attack':26s} {'exact':>7s}  failures")
    allok, allok_nonone = [], []
    for an in attack_names:
        v = per_att[an]
        allok += v
        if an != "none":
            allok_nonone += v
        print(f"{an:26s} {100 * np.mean(v):6.1f}%  {' '.join(fails[an][:6])}")
    print(f"OVERALL (attacks only): {100 * np.mean(allok_nonone):.2f}% of {len(allok_nonone)} cases")
    ps = np.array([p for _, p in psnrs])
    ss = np.array([s for _, s in ssims])
    print("\n=== invisibility ===")
    for (n, p), (_, s) in zip(psnrs, ssims):
        print(f"  {n:28s} PSNR {p:6.2f} dB  SSIM {s:.4f}")
    print(f"PSNR min/median/mean {ps.min():.2f}/{np.median(ps):.2f}/{ps.mean():.2f} dB; "
          f"SSIM min/median {ss.min():.4f}/{np.median(ss):.4f}")
    print("\n=== numpy timing (single process) ===")
    for s in sizes:
        print(f"  {s[0]}x{s[1]}: embed {1000 * np.median(temb[s]):.0f} ms, "
              f"detect {1000 * np.median(tdet[s]) if tdet[s] else float('nan'):.0f} ms")

    if args.null:
        run_null_table(args)


def run_null_table(args):
    if args.null:
        t0 = time.time()
        with Pool(args.procs) as pool:
            nul = pool.map(run_null, range(args.null_start, args.null_start + args.null),
                           chunksize=8)
        zmax = np.array([n[0] for n in nul])
        pv = np.array([n[1] for n in nul])
        fp = sum(n[2] for n in nul)
        fpay = sum(n[3] for n in nul)
        z0 = np.array([n[4] for n in nul])
        print(f"\n=== null distribution: {args.null} unmarked items ({time.time() - t0:.0f} s) ===")
        print(f"single-hypothesis z: mean {z0.mean():+.3f} std {z0.std():.3f} "
              f"(model N(0,1)); KS p = {stats.kstest(z0, 'norm').pvalue:.3f}; "
              f"max |z| {np.abs(z0).max():.2f}")
        print(f"max-over-hypotheses z: median {np.median(zmax):.2f}, 99th pct "
              f"{np.percentile(zmax, 99):.2f}, max {zmax.max():.2f}")
        nh_max = max(n[5] for n in nul)
        zthr = math.sqrt(2 * math.log(nh_max / wm.P_THRESHOLD))
        print(f"hypotheses per item <= {nh_max}; threshold z* = {zthr:.2f} (p <= 1e-6 by the "
              f"Chernoff/union bound)")
        for zq in (4.5, 5.0, 5.5, 6.0):
            # the bound for each item uses that item's own hypothesis count
            pred = float(np.mean([min(1.0, n[5] * stats.norm.sf(zq)) for n in nul]))
            print(f"  P(zmax >= {zq}): empirical {np.mean(zmax >= zq):.4f}  "
                  f"union bound (Gaussian) <= {pred:.4f}")
        print(f"smallest p-value {pv.min():.3g}; false detections (p<=1e-6): {fp}; "
              f"payloads accepted (CRC ok + present): {fpay}")


if __name__ == "__main__":
    main()
