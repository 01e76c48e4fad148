"""Figures for image GANs: sample grids, their evolution, D scores, latent interpolations,
class-conditional grids, InfoGAN code traversals and nearest training images.

Images arrive as float tensors (N, C, H, W) in [-1, 1]. Grids are written with Pillow at the
images' own resolution (exact pixels, small files), zoomed to >= 48 px per image; figures with
labels use matplotlib. Sample grids of class-conditional models group the images one class per
row block, labelled in a margin (``by_class``).
What ``final_plots`` draws depends on the model's capabilities (``gankit.core.capabilities``):
"labels" gives one row per class, "codes" the InfoGAN traversals, "latent" interpolations
(and for a 2-d latent the decoded manifold), "encoding" the held-out codes
(``gankit.plots.latent``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.data.base import make_generator
from gankit.data.decode import decode_image
from gankit.plots.common import Figure, curves, draw_figures, figure, save, upscale_for
from gankit.plots.latent import FIGURES as LATENT_FIGURES
from gankit.plots.reconstruction import FIGURE as RECONSTRUCTION

PAD = 2                 # pixels between grid cells
MIN_CELL = 48           # saved sample grids show each image at least this many pixels wide
HEADER = 16             # pixels of the title strip above a saved sample grid
HEADER_PX = 12          # font size (pixels) of its title: smaller sizes of the default font
                        # draw word spaces as narrow as letter gaps ("step60")
SEED = 777              # noise for the final figures (separate from training and fixed noise)
NN_REFERENCE = 10000    # training images searched for nearest neighbours
LABEL_PX = 14           # font size (pixels) of the class labels beside a conditional grid
ROW_LABELS_KEY = "gankit:row_labels"   # PNG text chunk: a grid's row labels as a JSON list


# ------------------------------------------------------------------ pure helpers
def to_uint8(x: Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(x: Tensor, ncol: int | None = None, pad: int = PAD, pad_value: int = 255) -> np.ndarray:
    """Tile images row by row into one (rows*(H+pad)+pad, ncol*(W+pad)+pad, C) uint8 array."""
    imgs = to_uint8(x)
    n, h, w, c = imgs.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.uint8)
    for i, img in enumerate(imgs):
        r, col = divmod(i, ncol)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = img
    return grid


def pil_image(grid: np.ndarray) -> Image.Image:
    return Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)


def save_grid(x: Tensor, path: Path, ncol: int | None = None, title: str = "",
              row_labels: list[str] | tuple[str, ...] = ()) -> Path:
    """A grid of images (N, C, H, W) in [-1, 1] as a PNG: each image zoomed (nearest) to at
    least MIN_CELL pixels, with ``title`` in a strip of HEADER pixels above when given.

    ``row_labels`` (one string per grid row, "" for none) are written in a margin left of the
    rows, and kept as a JSON list in the PNG text chunk ``ROW_LABELS_KEY``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = upscale_for(x.shape[-1], MIN_CELL)
    pic = pil_image(make_grid(x, ncol)).convert("RGB")
    pic = pic.resize((pic.width * scale, pic.height * scale), Image.Resampling.NEAREST)
    if row_labels:
        pic = _label_rows(pic, list(row_labels), cell=x.shape[-2] * scale, pad=PAD * scale)
    if title:
        pic = _with_title(pic, title, left=PAD * scale)
    if row_labels and path.suffix.lower() == ".png":
        meta = PngInfo()
        meta.add_text(ROW_LABELS_KEY, json.dumps(list(row_labels)))
        pic.save(path, pnginfo=meta)
    else:
        pic.save(path)
    return path


def _with_title(pic: Image.Image, title: str, left: int) -> Image.Image:
    """``pic`` below a white strip of HEADER pixels holding ``title`` (HEADER_PX, from
    ``left`` pixels, centred vertically)."""
    font = ImageFont.load_default(size=HEADER_PX)
    out = Image.new("RGB", (pic.width, pic.height + HEADER), "white")
    out.paste(pic, (0, HEADER))
    draw = ImageDraw.Draw(out)
    _, top, _, bottom = draw.textbbox((0, 0), title, font=font)
    draw.text((left, (HEADER - bottom - top) / 2), title, fill="black", font=font)
    return out


def _label_rows(pic: Image.Image, labels: list[str], cell: int, pad: int) -> Image.Image:
    """``pic`` (a zoomed grid, rows of ``cell`` px between ``pad`` px gaps) with a white
    margin on its left holding each row's label, right-aligned and centred on its row."""
    font = ImageFont.load_default(size=LABEL_PX)
    probe = ImageDraw.Draw(pic)
    boxes = [probe.textbbox((0, 0), t, font=font) for t in labels]
    width = max(b[2] - b[0] for b in boxes) + 3 * pad
    out = Image.new("RGB", (pic.width + width, pic.height), "white")
    out.paste(pic, (width, 0))
    draw = ImageDraw.Draw(out)
    for r, (text, (x0, y0, x1, y1)) in enumerate(zip(labels, boxes)):
        centre = pad + r * (cell + pad) + cell / 2
        draw.text((width - 2 * pad - (x1 - x0) - x0, centre - (y1 + y0) / 2), text,
                  fill="black", font=font)
    return out


def class_label(k: int, names: tuple[str, ...] = ()) -> str:
    """A class's row label: 'y=3', or 'y=1 Trouser' when the data name it otherwise."""
    name = names[k] if k < len(names) else str(k)
    return f"y={k}" if name == str(k) else f"y={k} {name}"


def by_class(x: Tensor, labels: Tensor, names: tuple[str, ...] = (),
             max_cols: int | None = None) -> tuple[Tensor, int, list[str]]:
    """Images (N, C, H, W) and their labels (N,) regrouped one class per block of rows, in
    class order (each class's images in their given order): returns the cells
    (R * ncol, C, H, W) with white fillers closing each class's last row, ``ncol``, and one
    label per row (``class_label`` on a class's first row, "" on the rows it continues on).

    ``ncol`` is the largest class count, at most ``max_cols`` (default: 10, or sqrt(N) when
    larger). ValueError when the counts of images and labels differ."""
    labels = torch.as_tensor(labels).flatten().cpu()
    if len(labels) != len(x):
        raise ValueError(f"{len(x)} images but {len(labels)} labels")
    classes = sorted(int(k) for k in labels.unique())
    groups = [x[labels == k] for k in classes]
    max_cols = max_cols or max(10, math.ceil(math.sqrt(len(x))))
    ncol = min(max_cols, max(len(g) for g in groups))
    filler = torch.ones_like(x[:1])                                     # white
    cells, rows = [], []
    for k, g in zip(classes, groups):
        nrow = math.ceil(len(g) / ncol)
        cells += [g, filler.expand(nrow * ncol - len(g), *x.shape[1:])]
        rows += [class_label(k, names)] + [""] * (nrow - 1)
    return torch.cat(cells), ncol, rows


def class_samples(trainer, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` samples of a class-conditional model (capability "labels") for a picture, and
    their labels (n,) int64: the n split over the K classes (the first n mod K classes get
    one more), each class drawn with ``trainer.sample(n_k, seed)`` under ``fixed_label``, so
    the classes share their noise z column by column. Images (n, C, H, W) in [-1, 1]."""
    k = trainer.data.info.num_classes
    xs, ys = [], []
    for c in range(k):
        m = n // k + (c < n % k)
        if m:
            with trainer.fixed_label(c):
                xs.append(trainer.sample(m, seed=seed))
            ys.append(torch.full((m,), c, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Linear interpolation between rows of a and b (B, D) at fractions t (T,) -> (B, T, D)."""
    t = t.view(1, -1, 1).to(a)
    return a[:, None] * (1 - t) + b[:, None] * t


def slerp(a: Tensor, b: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents) -> (B, T, D).

    Follows the great circle between a and b, so a Gaussian z keeps a typical norm where the
    straight line would pass through the low-density centre. Falls back to lerp for
    (anti)parallel vectors, where the circle is undefined.
    """
    t = t.view(1, -1, 1).to(a)
    cos = (torch.nn.functional.normalize(a, dim=1) * torch.nn.functional.normalize(b, dim=1)).sum(1)
    omega = torch.arccos(cos.clamp(-1, 1)).view(-1, 1, 1)             # (B, 1, 1)
    sin = torch.sin(omega)
    safe = sin.abs() > eps
    sin = torch.where(safe, sin, torch.ones_like(sin))
    out = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin
    return torch.where(safe, out, lerp(a, b, t.view(-1)))


def repeat_rows(inputs: dict[str, Tensor], times: int) -> dict[str, Tensor]:
    """Each sample's inputs repeated ``times`` times in a row (for grids with shared codes)."""
    return {k: v.repeat_interleave(times, 0) for k, v in inputs.items()}


def nearest_training(generated: Tensor, reference: Tensor, k: int) -> np.ndarray:
    """Indices (G, k) of the k nearest reference images (Euclidean, pixels)."""
    try:
        from gankit.metrics.memorization import nearest_neighbours
    except ImportError:
        nearest_neighbours = None
    if nearest_neighbours is not None:
        return nearest_neighbours(generated.numpy(), reference.numpy(), k=k)["train_idx"]
    g, r = generated.flatten(1), reference.flatten(1)
    rows = [torch.cdist(g[i:i + 256], r).topk(k, largest=False).indices
            for i in range(0, len(g), 256)]
    return torch.cat(rows).numpy()


def labelled_grid(x: Tensor, ncol: int, path: Path, title: str, row_labels=(),
                  col_labels=(), xlabel: str = "", ylabel: str = "") -> Path:
    """A grid drawn with matplotlib so rows and columns can carry labels."""
    grid = make_grid(x, ncol)
    h, w = x.shape[-2:]
    nrow = math.ceil(len(x) / ncol)
    fig, ax = figure(1, 1, 1)
    fig.set_size_inches(*figure_inches(grid.shape[:2], h, margin=(1.5, 1.0)))
    a = ax[0, 0]
    a.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
             interpolation="nearest")
    centres = lambda count, side: [PAD + i * (side + PAD) + side / 2 for i in range(count)]  # noqa: E731
    a.set_yticks(centres(nrow, h)[:len(row_labels)], list(row_labels)[:nrow], fontsize=7)
    a.set_xticks(centres(ncol, w)[:len(col_labels)], list(col_labels)[:ncol], fontsize=7)
    a.tick_params(length=0)
    a.set(title=title, xlabel=xlabel, ylabel=ylabel)
    for spine in a.spines.values():
        spine.set_visible(False)
    return save(fig, path)


# ------------------------------------------------------------------ the view
class ImageView:
    """Samples and diagnostics for ``DataInfo.kind == "image"``."""

    def save_samples(self, x: Tensor, path: Path, trainer=None,
                     labels: Tensor | int | None = None) -> Path:
        """A grid of ``x`` (N, C, H, W) under a 'step N, images seen' title. With ``labels``
        (class-conditional models: the class of each image (N,), or one class for all) the
        images are grouped one class per row block, each block labelled with its class
        (``by_class``; names from the data when they declare them)."""
        title = (f"step {trainer.c.step}, {trainer.c.images_seen:,} real images seen"
                 if trainer is not None else "")
        if labels is None:
            return save_grid(x, path, title=title)
        if isinstance(labels, int):
            labels = torch.full((len(x),), labels, dtype=torch.int64)
        names = tuple(trainer.data.info.class_names) if trainer is not None else ()
        cells, ncol, rows = by_class(x, labels, names)
        return save_grid(cells, path, ncol, title=title, row_labels=rows)

    def final_plots(self, trainer, folder: Path, rows: list[dict]) -> list[Path]:
        from gankit.plots.styles import STYLE_FIGURES    # it draws with this module's grids
        side = int(trainer.data.info.shape[-1])
        figures = [
            Figure("evolution", lambda t, f, r: self.evolution(
                f.parent / "samples", f / "evolution.png", side)),
            Figure("losses", lambda t, f, r: curves(r, f / "losses.png"), frozenset()),
            Figure("interpolation", lambda t, f, r: self.interpolation(t, f / "interpolation.png"),
                   frozenset({caps.SAMPLES, caps.LATENT})),
            Figure("class_grid", lambda t, f, r: self.class_grid(t, f / "class_grid.png"),
                   frozenset({caps.SAMPLES, caps.LABELS})),
            Figure("code_traversals", lambda t, f, r: self.traversals(t, f),
                   frozenset({caps.SAMPLES, caps.CODES})),
            Figure("nearest_training", lambda t, f, r: self.neighbours(
                t, f / "nearest_training.png")),
            RECONSTRUCTION,
            *LATENT_FIGURES,
            *STYLE_FIGURES,
        ]
        return draw_figures(figures, trainer, folder, rows)

    # -- evolution of the fixed-noise grids --------------------------------------------
    @staticmethod
    def evolution(samples: Path, path: Path, side: int) -> Path | None:
        """The first row of every saved grid, one above the other, labelled by step."""
        files = sorted(Path(samples).glob("step-*.png"))
        if not files:
            return None
        strips, steps = [], []
        scale = upscale_for(side, MIN_CELL)
        for f in files:
            grid = decode_image(f, channels=3).transpose(1, 2, 0)      # (H, W, 3)
            # the top row of cells, below the title strip (save_grid's layout)
            strips.append(grid[HEADER:HEADER + scale * (side + 2 * PAD)])
            steps.append(int(re.findall(r"\d+", f.stem)[0]))
        width = max(s.shape[1] for s in strips)
        strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255)
                  for s in strips]
        strip = np.concatenate(strips)
        fig, ax = figure(1, 1, 1)
        fig.set_size_inches(*figure_inches(strip.shape[:2], side * scale, margin=(1.2, 0.6)))
        a = ax[0, 0]
        a.imshow(strip, interpolation="nearest")
        h = strips[0].shape[0]
        a.set_yticks([h * (i + 0.5) for i in range(len(steps))], [f"step {s}" for s in steps],
                     fontsize=7)
        a.set_xticks([])
        a.set_title("fixed-noise samples during training")
        return save(fig, path)

    # -- latent interpolation -----------------------------------------------------------
    @staticmethod
    def interpolation(trainer, path: Path, pairs: int = 6, steps: int = 11) -> Path:
        """Rows: linear then spherical paths between the same z pairs (other inputs fixed)."""
        gen = make_generator(SEED, trainer.device)
        a = trainer.objective.sample_inputs(pairs, gen)
        b = trainer.objective.sample_inputs(pairs, gen)
        t = torch.linspace(0, 1, steps)
        images = []
        for path_fn in (lerp, slerp):
            inputs = repeat_rows(a, steps)
            inputs["z"] = path_fn(a["z"], b["z"], t).reshape(pairs * steps, -1)
            images.append(trainer.generate(inputs).float().cpu())
        labels = [f"lerp {i + 1}" for i in range(pairs)] + [f"slerp {i + 1}" for i in range(pairs)]
        return labelled_grid(torch.cat(images), steps, path, "latent interpolation", labels,
                             [f"{v:.1f}" for v in t.tolist()], xlabel="t")

    # -- conditional models -----------------------------------------------------------
    @staticmethod
    def class_grid(trainer, path: Path, ncol: int = 10) -> Path:
        """One row per class label; each column shares its z across rows."""
        k = trainer.data.info.num_classes
        gen = make_generator(SEED, trainer.device)
        base = trainer.objective.sample_inputs(ncol, gen)
        inputs = {key: v.repeat(k, *([1] * (v.dim() - 1))) for key, v in base.items()}
        inputs["y"] = torch.arange(k, device=trainer.device).repeat_interleave(ncol)
        x = trainer.generate(inputs).float().cpu()
        names = trainer.data.info.class_names or tuple(str(i) for i in range(k))
        return labelled_grid(x, ncol, path, "one row per label", names, ylabel="label y")

    @staticmethod
    def traversals(trainer, folder: Path, nrow: int = 8, span: float = 2.0,
                   steps: int = 9) -> list[Path]:
        """InfoGAN: vary one code, fix z and the others. c1 over its values (one column
        each); every continuous code over [-span, span] (with the other continuous codes 0)."""
        gen = make_generator(SEED, trainer.device)
        base = trainer.objective.sample_inputs(nrow, gen)
        k, m = trainer.objective.code_spec()
        out = []
        if k:
            inputs = repeat_rows(base, k)
            inputs["c_cat"] = torch.arange(k, device=trainer.device).repeat(nrow)
            x = trainer.generate(inputs).float().cpu()
            out.append(labelled_grid(x, k, folder / "infogan_c1.png",
                                     "categorical code c1 (columns), one z per row", (),
                                     [str(i) for i in range(k)], xlabel="c1"))
        values = torch.linspace(-span, span, steps, device=trainer.device)
        for j in range(m):
            inputs = repeat_rows(base, steps)
            cont = torch.zeros_like(inputs["c_cont"])
            cont[:, j] = values.repeat(nrow)
            inputs["c_cont"] = cont
            x = trainer.generate(inputs).float().cpu()
            out.append(labelled_grid(x, steps, folder / f"infogan_c{j + 2}.png",
                                     f"continuous code c{j + 2} from {-span:g} to {span:g}", (),
                                     [f"{v:.1f}" for v in values.tolist()], xlabel=f"c{j + 2}"))
        return out

    # -- memorisation check -----------------------------------------------------------
    @staticmethod
    def neighbours(trainer, path: Path, n: int = 8, k: int = 5) -> Path | None:
        """Generated samples (left column) and their k nearest training images in pixels."""
        if not hasattr(trainer.data, "sample"):
            return None
        gen = trainer.sample(n, seed=SEED)
        ref = trainer.data.sample(min(NN_REFERENCE, len(trainer.data)), seed=SEED).float().cpu()
        idx = nearest_training(gen, ref, k)                               # (n, k)
        tiles = torch.cat([torch.cat([gen[i:i + 1], ref[idx[i]]]) for i in range(n)])
        return labelled_grid(tiles, 1 + k, path, f"nearest of {len(ref)} training images", (),
                             ["generated"] + [f"NN {j + 1}" for j in range(k)])


def figure_inches(pixels: tuple[int, int], side: int, margin: tuple[float, float]) -> tuple[float, float]:
    """Figure size showing a (height, width) pixel array with cells of ``side`` pixels drawn
    at least ~56 screen pixels wide (at 100 dpi), plus room for labels."""
    scale = max(1.0, 56 / side) / 100
    return pixels[1] * scale + margin[0], pixels[0] * scale + margin[1]
