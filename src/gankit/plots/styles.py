"""Pictures of a style-based generator (capability "styles"; Karras et al. 2019).

* ``style_mixing.png``: sources A down the side, sources B across the top; each cell is A
  with B's coarse (4^2-8^2), middle or fine styles (figure 3 of the paper), one block of
  rows per crossover.
* ``truncation.png``: the truncation trick, psi from 1 to 0 across the columns (figure 8):
  every row converges on the image of the average w.
* ``noise_variation.png``: one w per row, different per-pixel noise across the columns, and
  the per-pixel standard deviation over many noise draws (figure 4: the noise moves hair-like
  detail, not the identity).
* ``interpolation_zw.png``: the same pairs interpolated in Z (slerp) and in W (lerp), the
  paths whose perceptual lengths the ``ppl`` metric compares (section 4.2).

Each asks the objective for its styles (``to_w``, ``truncated``, ``mixed``, ``with_noise``,
``style_layers``), never for a model name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.data.base import make_generator
from gankit.plots.common import Figure
from gankit.plots.images import labelled_grid, lerp, repeat_rows, slerp

SEED = 20190  # fixed sources, so figures of one run at different steps compare
GROUPS = ("coarse", "middle", "fine")
NEEDS = frozenset({caps.SAMPLES, caps.STYLES})


def _draw(trainer, n: int, gen: torch.Generator) -> dict[str, Tensor]:
    return trainer.objective.sample_inputs(n, gen)


def _images(trainer, inputs: dict[str, Tensor]) -> Tensor:
    return trainer.generate(inputs).float().cpu().clamp(-1, 1)


def style_mixing(trainer, path: Path, n_a: int = 4, n_b: int = 5) -> Path:
    """The style-mixing grid: a corner, B across the top; then for each of coarse / middle /
    fine, one row per A: A, then A with that group of B's styles for each B."""
    obj, gen = trainer.objective, make_generator(SEED, trainer.device)
    a, b = _draw(trainer, n_a, gen), _draw(trainer, n_b, gen)
    xa, xb = _images(trainer, a), _images(trainer, b)
    blank = torch.ones_like(xa[:1])                                   # white corner
    rows, labels, spans = [torch.cat([blank, xb])], ["B"], []
    for group in GROUPS:
        lo, hi = obj.style_layers(group)
        spans.append(f"{group} w {lo}-{hi - 1}")
        for i in range(n_a):
            ai = {k: v[i:i + 1].expand(n_b, *v.shape[1:]) for k, v in a.items()}
            mixed = _images(trainer, obj.mixed(ai, b, group))
            rows.append(torch.cat([xa[i:i + 1], mixed]))
            labels.append(f"{group}: A{i + 1}")
    return labelled_grid(torch.cat(rows), 1 + n_b, path,
                         "style mixing: A (left) with B's styles (top)\n" + ", ".join(spans),
                         labels, ["A"] + [f"B{j + 1}" for j in range(n_b)])


def truncation_sweep(trainer, path: Path, rows: int = 6,
                     psis: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)) -> Path:
    """One z per row at truncation psi 1 -> 0 across (w_avg + psi (w - w_avg))."""
    obj, gen = trainer.objective, make_generator(SEED, trainer.device)
    base = repeat_rows(_draw(trainer, rows, gen), len(psis))
    psi = torch.tensor(psis, device=trainer.device).repeat(rows)
    inputs = obj.truncated(base, psi)
    return labelled_grid(_images(trainer, inputs), len(psis), path,
                         "truncation trick: psi from 1 to 0", [], [f"{p:g}" for p in psis],
                         xlabel="psi")


def noise_variation(trainer, path: Path, rows: int = 5, shown: int = 5,
                    draws: int = 64) -> Path:
    """Per row one w and ``shown`` draws of the per-pixel noise, then the per-pixel standard
    deviation over ``draws`` noise draws (grey levels of the mean over channels, scaled so
    the row's largest is white)."""
    obj, gen = trainer.objective, make_generator(SEED, trainer.device)
    base = _draw(trainer, rows, gen)
    cells = []
    for i in range(rows):
        one = {k: v[i:i + 1].expand(draws, *v.shape[1:]) for k, v in base.items()}
        x = _images(trainer, obj.with_noise(one, gen))               # (draws, C, H, W)
        std = x.std(0).mean(0, keepdim=True)                          # (1, H, W)
        std = std / std.max().clamp_min(1e-8) * 2 - 1                 # to [-1, 1] for display
        cells += [x[:shown], std.expand(x.shape[1], -1, -1)[None]]
    return labelled_grid(torch.cat(cells), shown + 1, path,
                         f"same w, different noise; right: per-pixel std over {draws} draws",
                         [], [f"noise {j + 1}" for j in range(shown)] + ["std"])


def interpolation_zw(trainer, path: Path, pairs: int = 4, steps: int = 9) -> Path:
    """For each pair, a row interpolated in Z (slerp, the noise fixed) and one in W (lerp
    between f(z1) and f(z2))."""
    obj, gen = trainer.objective, make_generator(SEED, trainer.device)
    a, b = _draw(trainer, pairs, gen), _draw(trainer, pairs, gen)
    t = torch.linspace(0, 1, steps, device=trainer.device)
    wa, wb = trainer.styles(a)[:, 0], trainer.styles(b)[:, 0]         # (pairs, w_dim)
    in_z = {**repeat_rows(a, steps), "z": slerp(a["z"], b["z"], t).reshape(pairs * steps, -1)}
    in_w = {k: v for k, v in repeat_rows(a, steps).items() if k != "z"}
    in_w["w"] = lerp(wa, wb, t).reshape(pairs * steps, -1)
    xz, xw = _images(trainer, in_z), _images(trainer, in_w)
    cells, labels = [], []
    for i in range(pairs):
        cells += [xz[i * steps:(i + 1) * steps], xw[i * steps:(i + 1) * steps]]
        labels += [f"Z slerp {i + 1}", f"W lerp {i + 1}"]
    return labelled_grid(torch.cat(cells), steps, path, "interpolation in Z and in W", labels,
                         [f"{v:.2f}" for v in t.tolist()], xlabel="t")


STYLE_FIGURES = [
    Figure("style_mixing", lambda t, f, r: style_mixing(t, f / "style_mixing.png"), NEEDS),
    Figure("truncation", lambda t, f, r: truncation_sweep(t, f / "truncation.png"), NEEDS),
    Figure("noise_variation", lambda t, f, r: noise_variation(t, f / "noise_variation.png"),
           NEEDS),
    Figure("interpolation_zw", lambda t, f, r: interpolation_zw(t, f / "interpolation_zw.png"),
           NEEDS),
]
