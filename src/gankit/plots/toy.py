"""Figures for the toy problems: the course-slide 1-D picture and 2-D mixture diagnostics."""

from __future__ import annotations

import io
import textwrap
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

from gankit.core import capabilities as caps
from gankit.data.base import make_generator
from gankit.fileio import atomic_write
from gankit.plots.common import Figure, curves, draw_figures, figure, metric_curves, save
from gankit.plots.reconstruction import FIGURE as RECONSTRUCTION

DATA_SEED = 999
SNAPSHOTS = "snapshots"      # run sub-folder of the 1-D view's per-step panel data


def strip_steps(available: list[int], last: int) -> list[int]:
    """The steps of the 1-D strip among ``available`` snapshot steps: 1 and the powers of
    ten up to ``last``, and the newest snapshot up to ``last`` (sorted, no repeats)."""
    steps = sorted(s for s in set(available) if 0 < s <= last)
    picked = [s for s in steps if str(s).rstrip("0") == "1"]           # 1, 10, 100, ...
    if steps and steps[-1] not in picked:
        picked.append(steps[-1])
    return picked


def critic_values(trainer, x: torch.Tensor) -> torch.Tensor:
    """The critic map at points x (n, d) -> (n,) on the CPU (capability "critic")."""
    return trainer.objective.critic_map(x.to(trainer.device)).float().cpu()


def critic_label(trainer) -> str:
    """What the critic map shows: an objective may name it (``critic_label``), e.g. BEGAN's
    reconstruction error; else D(x) for probabilities and "critic D(x)" for raw values."""
    named = getattr(trainer.objective, "critic_label", None)
    if named:
        return named
    return "D(x)" if trainer.objective.critic_is_probability else "critic D(x)"


class Toy2DView:
    """2-D mixtures: samples over the data, the critic's map and G's gradient field, the
    model's log-likelihood, losses and mode metrics (each drawn when the model offers it).
    Axes hold the data and every generated point; legends sit under the axes."""

    def save_samples(self, x: torch.Tensor, path: Path, trainer=None) -> Path:
        fig, ax = figure()
        self._scatter(ax[0, 0], trainer, x.numpy())
        ax[0, 0].set_title(f"fixed-noise samples\n{when(trainer)}" if trainer else "")
        return save(fig, path)

    def _scatter(self, ax, trainer, x: np.ndarray) -> tuple[float, float]:
        real = trainer.data.sample(2500, DATA_SEED).numpy()
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.4, label="data")
        ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:orange", alpha=0.6, label="generated")
        lims = x_limits(trainer.data, x)
        ax.set(xlim=lims, ylim=lims, aspect="equal", xlabel="x1", ylabel="x2")
        _legend_below(ax)
        return lims

    def final_plots(self, trainer, folder: Path, rows: list[dict]) -> list[Path]:
        figures = [
            Figure("samples", self._samples),
            Figure("critic_and_gradient_field", self._critic_and_field,
                   frozenset({caps.SAMPLES, caps.CRITIC})),
            Figure("log_likelihood", self._likelihood, frozenset({caps.LIKELIHOOD})),
            RECONSTRUCTION,
            Figure("losses", lambda t, f, r: curves(r, f / "losses.png"), frozenset()),
            Figure("mode_metrics", lambda t, f, r: metric_curves(
                r, ["modes", "hq_fraction", "kl"], f / "mode_metrics.png"), frozenset()),
        ]
        return draw_figures(figures, trainer, folder, rows)

    def _samples(self, trainer, folder: Path, rows) -> Path:
        name = trainer.cfg.data.name
        fig, ax = figure()
        self._scatter(ax[0, 0], trainer, trainer.sample(2500, seed=12345).numpy())
        ax[0, 0].set_title(f"{name}: 2,500 samples over the data\n{when(trainer)}")
        return save(fig, folder / f"{name}_samples.png")

    @staticmethod
    def grid(lims: tuple[float, float], k: int) -> torch.Tensor:
        """(k*k, 2) points of a k x k grid over the square lims^2, row by row (x fastest)."""
        ticks = torch.linspace(lims[0], lims[1], k)
        gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
        return torch.stack([gx.flatten(), gy.flatten()], 1)               # (k*k, 2)

    def _critic_and_field(self, trainer, folder: Path, rows) -> Path:
        x = trainer.sample(2500, seed=12345).numpy()
        lims = x_limits(trainer.data, x)
        lo, hi = lims
        values = critic_values(trainer, self.grid(lims, 200)).view(200, 200).numpy()
        pts = self.grid(lims, 21)
        push = trainer.objective.generator_field(pts.to(trainer.device)).float().cpu()
        push = push / (push.norm(dim=1, keepdim=True).max() + 1e-12)
        fig, ax = figure(2, 1, 4.5)
        im = ax[0, 0].imshow(values, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis",
                             aspect="equal")
        fig.colorbar(im, ax=ax[0, 0], fraction=0.046, label=critic_label(trainer))
        ax[0, 0].scatter(x[:, 0], x[:, 1], s=1, c="white", alpha=0.5, label="generated")
        ax[0, 0].set(title=f"{critic_label(trainer)} over the plane\n{when(trainer)}",
                     xlim=lims, ylim=lims, xlabel="x1", ylabel="x2")
        _legend_below(ax[0, 0])
        real = trainer.data.sample(1000, DATA_SEED).numpy()
        ax[0, 1].scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.4, label="data")
        ax[0, 1].quiver(pts[:, 0], pts[:, 1], push[:, 0], push[:, 1], color="tab:red",
                        angles="xy", scale_units="xy", scale=1.5 / ((hi - lo) / 20),
                        label="-grad L_G: where G's samples are pushed")
        ax[0, 1].set(title=f"generator gradient field\n{when(trainer)}", xlim=lims, ylim=lims,
                     aspect="equal", xlabel="x1", ylabel="x2")
        _legend_below(ax[0, 1], ncol=1)
        return save(fig, folder / "critic_and_gradient_field.png")

    def _likelihood(self, trainer, folder: Path, rows) -> Path:
        lims = x_limits(trainer.data)
        lo, hi = lims
        with torch.no_grad():
            logp = trainer.objective.log_likelihood(self.grid(lims, 200).to(trainer.device),
                                                    trainer.sampler()).float().cpu()
        fig, ax = figure(1, 1, 4.5)
        im = ax[0, 0].imshow(logp.view(200, 200).clamp_min(logp.max() - 20).numpy(),
                             origin="lower", extent=(lo, hi, lo, hi), cmap="magma")
        fig.colorbar(im, ax=ax[0, 0], fraction=0.046, label="log p(x) (nats)")
        real = trainer.data.sample(1000, DATA_SEED).numpy()
        ax[0, 0].scatter(real[:, 0], real[:, 1], s=1, c="cyan", alpha=0.4, label="data")
        ax[0, 0].set(title=f"model log-likelihood\n{when(trainer)}", aspect="equal",
                     xlabel="x1", ylabel="x2")
        _legend_below(ax[0, 0])
        return save(fig, folder / "log_likelihood.png")


def when(trainer) -> str:
    """'step 3000, 768,000 real points' for figure titles (a toy's examples are points)."""
    return f"step {trainer.c.step}, {trainer.c.images_seen:,} real points"


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def x_limits(data, *samples: np.ndarray, pad: float = 0.05) -> tuple[float, float]:
    """An x-range holding the data's own range (``data.bounds``) and every finite sample of
    ``samples``, padded by ``pad`` of its width on each side: the step-1 picture shows the
    generator's output even when it starts far from the data."""
    lo, hi = (float(v) for v in data.bounds)
    for s in samples:
        s = _finite(s)
        if s.size:
            lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
    margin = pad * (hi - lo)
    return lo - margin, hi + margin


def _game(trainer, width: int | None = None) -> str:
    """The objective's name and the first line of its docstring (which game the run plays),
    wrapped at ``width`` characters."""
    doc = (type(trainer.objective).__doc__ or "").strip().splitlines()
    text = f"{trainer.cfg.objective.name}: {doc[0].rstrip('.')}" if doc else \
        trainer.cfg.objective.name
    return textwrap.fill(text, width) if width else text


def _legend_below(ax, handles=None, labels=None, ncol: int = 2) -> None:
    """A legend under the axes, outside the data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, ncol=ncol, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), frameon=False)


class Gaussian1DView:
    """The course-slide 1-D figure: p_data, the histogram of p_g, D(x) and D(G(z)) (when the
    model has a critic), the learned G(z) against the inverse CDF (for a 1-D latent), losses;
    and a strip of its first two panels at steps 1, 10, 100, 1000, ... and the last
    (``plots/strip.png``), from the snapshots taken with the fixed-noise samples.

    Every x-range adapts to where the samples are (``x_limits``); every panel says what it
    shows and at which generator step. Each panel is computed as arrays first
    (``density_data``, ``mapping_data``) and drawn from them, so a snapshot
    (``snapshots/step-XXXXXXXX.npz``: arrays only, no pickle) redraws exactly what the run
    showed at that step, after any number of resumes."""

    HIST_MIN = 1000          # fewer samples than this are drawn as a rug over a fresh histogram
    SNAPSHOT_SAMPLES = 5000  # fresh samples behind each snapshot's histogram

    def save_samples(self, x: torch.Tensor, path: Path, trainer=None) -> Path:
        fig, _ = self.sample_figure(trainer, x)
        return save(fig, path)

    def sample_figure(self, trainer, x: torch.Tensor | None = None):
        """The step picture: p_data, the histogram of p_g and D; ``x`` (the fixed-noise or
        requested samples) is the histogram when there are enough of them, else a rug over a
        histogram of 5,000 fresh samples. Returns (figure, every sample drawn)."""
        x = None if x is None else x.float().cpu().numpy().ravel()
        if x is not None and len(x) >= self.HIST_MIN:
            hist, rug = x, None
        else:
            hist, rug = trainer.sample(5000, seed=12345).numpy().ravel(), x
        fig, ax = figure(1, 1, 4.6)
        self._densities(ax[0, 0], trainer, hist, rug)
        ax[0, 0].set_title(f"step {trainer.c.step}: p_data, p_g and D\n{_game(trainer, 60)}",
                           fontsize=9)
        drawn = hist if rug is None else np.concatenate([hist, rug])
        return fig, drawn

    # -- the panels as data ---------------------------------------------------------------
    @staticmethod
    def density_data(trainer, g: np.ndarray, rug: np.ndarray | None = None) -> dict:
        """What the densities panel draws, as arrays: ``xs`` (600,) the x grid over the data
        and every finite sample, ``pdf`` p_data on it, ``edges``/``dens`` the histogram of the
        samples ``g`` (density units), ``rug`` extra samples; with a critic also ``d`` the
        critic on ``xs``, ``gz``/``dgz`` up to 40 sorted samples and D there, ``probability``
        (D is a probability)."""
        data = trainer.data
        g = _finite(g)
        lo, hi = x_limits(data, g, *(() if rug is None else (rug,)))
        xs = np.linspace(lo, hi, 600)
        out = {"xs": xs, "pdf": data.pdf(xs), "n_g": np.array(g.size)}
        if g.size:
            bins = int(np.clip((hi - lo) / (data.params.std / 6), 60, 600))
            counts, edges = np.histogram(g, bins=bins, range=(lo, hi))
            out["edges"] = edges
            out["dens"] = counts / (counts.sum() * np.diff(edges))  # counts.sum() >= 1: g in range
        if rug is not None:
            out["rug"] = _finite(rug)
        if caps.CRITIC in trainer.objective.offers:
            column = lambda v: torch.tensor(v, dtype=torch.float32)[:, None]  # noqa: E731
            out["d"] = critic_values(trainer, column(xs)).numpy()               # (600,)
            gz = np.sort(g)[np.linspace(0, g.size - 1, min(g.size, 40)).astype(int)] \
                if g.size else g
            out["gz"] = gz
            out["dgz"] = critic_values(trainer, column(gz)).numpy()
            out["probability"] = np.array(bool(trainer.objective.critic_is_probability))
        return out

    @staticmethod
    def mapping_data(trainer) -> dict | None:
        """The G(z) panel as arrays (None without a 1-D latent z): ``z`` (400,) swept over
        [-1, 1] (uniform z) or [-3, 3] (normal z), ``gz`` = G(z) with the model's other inputs
        held at one draw, ``target`` = F^-1(u(z)) and ``mirror`` = F^-1(1 - u(z)) with u the
        CDF of z, ``uniform`` (z ~ U[-1, 1])."""
        latent = getattr(trainer.objective, "latent", None)
        if caps.LATENT not in trainer.objective.offers or latent is None or latent.dim != 1:
            return None
        uniform = latent.dist == "uniform"
        z = torch.linspace(-1, 1, 400)[:, None] if uniform else torch.linspace(-3, 3, 400)[:, None]
        # the model's other inputs (codes, labels) held at one draw, z swept
        base = trainer.objective.sample_inputs(1, make_generator(DATA_SEED, trainer.device))
        inputs = {k: v.repeat_interleave(len(z), 0) for k, v in base.items()}
        inputs["z"] = z.to(trainer.device)
        gz = trainer.generate(inputs).float().cpu().numpy().ravel()
        zn = z.numpy().ravel()
        u = (zn + 1) / 2 if uniform else stats.norm.cdf(zn)
        u = np.clip(u, 1e-3, 1 - 1e-3)
        return {"z": zn, "gz": gz, "target": trainer.data.inverse_cdf(u),
                "mirror": trainer.data.inverse_cdf(1 - u), "uniform": np.array(uniform)}

    # -- drawing from the data --------------------------------------------------------------
    @staticmethod
    def draw_densities(ax, d: dict, legend: bool = True) -> tuple[list, list]:
        """Draw ``density_data`` on ``ax`` (D on a twin axis); returns the legend's
        (handles, labels), placed under the axes when ``legend``."""
        xs, pdf = d["xs"], d["pdf"]
        lo, hi = float(xs[0]), float(xs[-1])
        ax.plot(xs, pdf, "k--", lw=1.5, label="p_data")
        top = 1.25 * float(pdf.max())
        if "dens" in d:
            dens, edges = d["dens"], d["edges"]
            clipped = dens.max() > 3 * top
            ax.stairs(np.minimum(dens, 3 * top), edges, fill=True, color="tab:green", alpha=0.5,
                      label=f"p_g: {int(d['n_g']):,} samples"
                      + (" (peak clipped)" if clipped else ""))
            top = max(top, min(1.1 * float(dens.max()), 3 * top))
        rug = d.get("rug")
        if rug is not None and len(rug):
            ax.plot(rug, np.full(len(rug), 0.02 * top), "|", color="tab:olive", ms=8,
                    label=f"{len(rug)} samples (ticks)")
        ax.set(xlim=(lo, hi), ylim=(0, top), xlabel="x", ylabel="density")
        handles, labels = ax.get_legend_handles_labels()
        if "d" in d:
            probability = bool(d["probability"])
            ax2 = ax.twinx()
            ax2.plot(xs, d["d"], color="tab:blue", label="D(x)" if probability else "critic D(x)")
            ax2.scatter(d["gz"], d["dgz"], marker="x", color="tab:red", s=16, zorder=3,
                        label="D(G(z))")
            if probability:
                ax2.set_ylim(-0.02, 1.02)
                ax2.axhline(0.5, color="gray", lw=0.8, ls=":", label="D = 1/2")
                ax2.set_ylabel("D(x) = P(x is real)")
            else:
                ax2.set_ylabel("critic value")
            more = ax2.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        if legend:
            _legend_below(ax, handles, labels, ncol=3)
        return handles, labels

    @staticmethod
    def draw_mapping(ax, m: dict | None, step: int, legend: bool = True) -> None:
        """Draw ``mapping_data`` on ``ax``: G(z) against F^-1(u(z)) and its mirror, each
        with the mean |G - it| over the z grid (``m`` None: a note that there is no map)."""
        if m is None:
            ax.set_title(f"step {step}: no G(z) map (the model has no 1-D latent z)", fontsize=9)
            ax.set_axis_off()
            return
        zn, gz, uniform = m["z"], m["gz"], bool(m["uniform"])
        gap = [float(np.mean(np.abs(gz - c))) if np.isfinite(gz).all() else float("nan")
               for c in (m["target"], m["mirror"])]
        ax.plot(zn, m["target"], "k--", lw=1.5,
                label=f"F^-1(u(z)) (target), mean |G - it| {gap[0]:.2f}")
        ax.plot(zn, m["mirror"], ":", color="gray",
                label=f"F^-1(1-u(z)) (mirror, also exact), mean |G - it| {gap[1]:.2f}")
        ax.plot(zn, gz, color="tab:green", lw=2, label="learned G(z)")
        dist = "U[-1,1]" if uniform else "N(0,1)"
        ax.set(xlabel=f"z ~ {dist}", ylabel="x = G(z)")
        ax.set_title(f"step {step}: generator map G(z) vs inverse CDF\n"
                     f"u(z) = {'(z+1)/2' if uniform else 'Phi(z)'}", fontsize=9)
        if legend:
            _legend_below(ax, ncol=1)

    def _densities(self, ax, trainer, g: np.ndarray, rug: np.ndarray | None = None):
        self.draw_densities(ax, self.density_data(trainer, g, rug))

    def _mapping(self, ax, trainer):
        self.draw_mapping(ax, self.mapping_data(trainer), trainer.c.step)

    def _losses(self, ax, trainer, rows: list[dict]):
        for key in sorted({k for r in rows for k in r if k.startswith("loss/")}):
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))
                   and np.isfinite(r[key])]
            if pts:
                ax.plot(*zip(*pts), label=key)
        steps = [r["step"] for r in rows if "step" in r]
        span = f"steps {min(steps)}-{max(steps)}" if steps else f"step {trainer.c.step}"
        ax.set(xlabel="generator step", ylabel="loss")
        ax.set_title(f"losses, {span}", fontsize=9)
        if not ax.lines:
            ax.text(0.5, 0.5, "no losses logged", ha="center", va="center",
                    transform=ax.transAxes)
        _legend_below(ax, ncol=2)

    def final_plots(self, trainer, folder: Path, rows: list[dict]) -> list[Path]:
        return draw_figures([Figure("gaussian1d", self._slide),
                             Figure("strip", lambda t, f, r: self.strip(
                                 t, f.parent / SNAPSHOTS, f / "strip.png")),
                             Figure("losses", lambda t, f, r: curves(r, f / "losses.png"),
                                    frozenset())], trainer, folder, rows)

    # -- the strip over training ----------------------------------------------------------------
    def snapshot(self, trainer, folder: Path) -> Path:
        """Keep this step's densities panel (``SNAPSHOT_SAMPLES`` fresh samples, seed 12345)
        and G(z) panel as ``folder/step-XXXXXXXX.npz`` (arrays only; a few tens of kB), for
        ``strip``. Called with the fixed-noise samples (``SampleGrids``), so resumed runs
        keep and rewrite them like the sample grids."""
        g = trainer.sample(self.SNAPSHOT_SAMPLES, seed=12345).numpy().ravel()
        arrays = {"step": np.array(trainer.c.step), "images_seen": np.array(trainer.c.images_seen)}
        arrays |= {f"d_{k}": np.asarray(v) for k, v in self.density_data(trainer, g).items()}
        m = self.mapping_data(trainer)
        arrays |= {f"m_{k}": np.asarray(v) for k, v in (m or {}).items()}
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: v.astype(np.float32) if v.dtype == np.float64 else v
                                    for k, v in arrays.items()})
        path = Path(folder) / f"step-{trainer.c.step:08d}.npz"
        atomic_write(path, buf.getvalue())
        return path

    @staticmethod
    def load_snapshots(folder: Path, last: int) -> dict[int, tuple[dict, dict | None]]:
        """{step: (density data, mapping data or None)} of the snapshots in ``folder`` up to
        step ``last`` (later ones belong to steps a resume will redo). Unreadable files are
        skipped."""
        out = {}
        for f in sorted(Path(folder).glob("step-*.npz")):
            try:
                with np.load(f, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                step = int(arrays["step"])
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
                continue
            if step <= last:
                d = {k[2:]: v for k, v in arrays.items() if k.startswith("d_")}
                m = {k[2:]: v for k, v in arrays.items() if k.startswith("m_")} or None
                out[step] = (d, m)
        return out

    def strip(self, trainer, snapshots: Path, path: Path) -> Path | None:
        """Save ``strip_figure`` to ``path`` (None when there are no snapshots)."""
        fig = self.strip_figure(trainer, snapshots)
        if fig is None:
            return None
        fig.tight_layout(rect=(0, 0.1, 1, 1))      # the shared legend below the panels
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def strip_figure(self, trainer, snapshots: Path):
        """The slide's first two panels at the steps ``strip_steps`` picks from the snapshots
        in ``snapshots`` (1, 10, 100, ... and the last, up to the trainer's step): densities
        and D (top row, each titled 'step N'), G(z) vs F^-1 (bottom row), one column per
        step, one legend below. None when there are no snapshots."""
        shots = self.load_snapshots(snapshots, trainer.c.step)
        steps = strip_steps(list(shots), trainer.c.step)
        if not steps:
            return None
        fig, ax = figure(len(steps), 2, 3.4)
        legend: tuple[list, list] = ([], [])
        for col, step in enumerate(steps):
            d, m = shots[step]
            handles, labels = self.draw_densities(ax[0, col], d, legend=False)
            ax[0, col].set_title(f"step {step}", fontsize=10)
            self.draw_mapping(ax[1, col], m, step, legend=False)
            if m is not None:
                gaps = {which: float(np.mean(np.abs(m["gz"] - m[which])))
                        for which in ("target", "mirror")}
                near = min(gaps, key=gaps.get) if np.isfinite(m["gz"]).all() else "target"
                ax[1, col].set_title(f"step {step}: G(z) vs F^-1\nmean |G - F^-1| "
                                     f"{gaps[near]:.2f} ({near})", fontsize=9)
                more = ax[1, col].get_legend_handles_labels()
                handles, labels = handles + more[0], labels + more[1]
            for h, lab in zip(handles, labels):      # one legend entry per kind of line
                kind = lab.split(", mean")[0].replace(" (peak clipped)", "")
                if kind not in legend[1]:
                    legend[0].append(h)
                    legend[1].append(kind)
        fig.legend(*legend, loc="lower center", ncol=min(4, len(legend[0])), fontsize=8,
                   frameon=False)
        fig.suptitle(f"{trainer.cfg.data.name}, {_game(trainer)}\n"
                     "p_data, p_g and D (top), G(z) against the inverse CDF (bottom)",
                     fontsize=10)
        return fig

    def slide_figure(self, trainer, rows: list[dict]):
        """The lecture slide: densities and D, G(z) vs F^-1, losses (one row)."""
        fig, ax = figure(3, 1, 4.4)
        g = trainer.sample(20000, seed=12345).numpy().ravel()
        self._densities(ax[0, 0], trainer, g)
        ax[0, 0].set_title(f"step {trainer.c.step}: p_data, p_g and D", fontsize=9)
        self._mapping(ax[0, 1], trainer)
        self._losses(ax[0, 2], trainer, rows)
        fig.suptitle(f"{trainer.cfg.data.name}, {_game(trainer)}", fontsize=10)
        return fig

    def _slide(self, trainer, folder: Path, rows: list[dict]) -> Path:
        return save(self.slide_figure(trainer, rows), folder / "gaussian1d.png")
