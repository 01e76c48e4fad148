"""Figures for the toy problems: the course-slide 1-D picture and 2-D mixture diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import stats

from gankit.plots.common import curves, figure, metric_curves, save

DATA_SEED = 999


def critic_values(trainer, x: torch.Tensor) -> torch.Tensor:
    """D on points: probabilities for sigmoid games, raw critic values otherwise."""
    D = trainer.nets["D"]
    with torch.no_grad():
        out = D(x.to(trainer.device)).float().cpu()
    return torch.sigmoid(out) if getattr(trainer.objective, "probabilistic", False) else out


def generator_push(trainer, x: torch.Tensor) -> torch.Tensor:
    """-grad_x of the generator's loss at points x: where G's samples are pushed."""
    x = x.to(trainer.device).clone().requires_grad_(True)
    D = trainer.nets["D"]
    with torch.enable_grad():
        out = D(x)
        loss = trainer.objective.g_term(out) * len(x)     # per-point loss, summed
        (g,) = torch.autograd.grad(loss, x)
    return -g.detach().cpu()


class Toy2DView:
    def save_samples(self, x: torch.Tensor, path: Path, trainer=None) -> Path:
        fig, ax = figure()
        self._scatter(ax[0, 0], trainer, x.numpy())
        ax[0, 0].set_title(f"step {trainer.c.step}" if trainer else "")
        return save(fig, path)

    def _scatter(self, ax, trainer, x: np.ndarray):
        real = trainer.data.sample(2500, DATA_SEED).numpy()
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.4, label="data")
        ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:orange", alpha=0.6, label="generated")
        lo, hi = trainer.data.bounds
        ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
        ax.legend(loc="upper right", fontsize=7, markerscale=4)

    def final_plots(self, trainer, folder: Path, rows: list[dict]) -> list[Path]:
        name = trainer.cfg.data.name
        x = trainer.sample(2500, seed=12345).numpy()
        out = []
        fig, ax = figure()
        self._scatter(ax[0, 0], trainer, x)
        ax[0, 0].set_title(f"{name}: samples over data, step {trainer.c.step}")
        out.append(save(fig, folder / f"{name}_samples.png"))
        out.append(self._critic_and_field(trainer, folder, x))
        out.append(curves(rows, folder / "losses.png"))
        out.append(metric_curves(rows, ["modes", "hq_fraction", "kl"], folder / "mode_metrics.png"))
        return [p for p in out if p]

    def _critic_and_field(self, trainer, folder: Path, x: np.ndarray) -> Path:
        lo, hi = trainer.data.bounds
        ticks = torch.linspace(lo, hi, 200)
        gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
        grid = torch.stack([gx.flatten(), gy.flatten()], 1)                 # (200*200, 2)
        values = critic_values(trainer, grid).view(200, 200).numpy()
        coarse = torch.linspace(lo, hi, 21)
        cx, cy = torch.meshgrid(coarse, coarse, indexing="xy")
        pts = torch.stack([cx.flatten(), cy.flatten()], 1)
        push = generator_push(trainer, pts)
        push = push / (push.norm(dim=1, keepdim=True).max() + 1e-12)
        fig, ax = figure(2, 1, 4.5)
        im = ax[0, 0].imshow(values, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis")
        fig.colorbar(im, ax=ax[0, 0], fraction=0.046)
        ax[0, 0].scatter(x[:, 0], x[:, 1], s=1, c="white", alpha=0.5)
        label = "D(x)" if getattr(trainer.objective, "probabilistic", False) else "critic D(x)"
        ax[0, 0].set_title(f"{label} with generated samples")
        real = trainer.data.sample(1000, DATA_SEED).numpy()
        ax[0, 1].scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.4)
        ax[0, 1].quiver(pts[:, 0], pts[:, 1], push[:, 0], push[:, 1], color="tab:red",
                        angles="xy", scale_units="xy", scale=1.5 / ((hi - lo) / 20))
        ax[0, 1].set(title="generator gradient field  -grad L_G", xlim=(lo, hi), ylim=(lo, hi),
                     aspect="equal")
        return save(fig, folder / "critic_and_gradient_field.png")


class Gaussian1DView:
    def save_samples(self, x: torch.Tensor, path: Path, trainer=None) -> Path:
        fig, ax = figure(1, 1, 3.5)
        self._densities(ax[0, 0], trainer, trainer.sample(5000, seed=12345).numpy().ravel())
        ax[0, 0].set_title(f"step {trainer.c.step}")
        return save(fig, path)

    def _densities(self, ax, trainer, g: np.ndarray):
        lo, hi = trainer.data.bounds
        xs = np.linspace(lo, hi, 400)
        ax.plot(xs, trainer.data.pdf(xs), "k--", label="p_data")
        ax.hist(g, bins=80, range=(lo, hi), density=True, color="tab:green", alpha=0.5,
                label="p_g (samples)")
        ax2 = ax.twinx()
        d = critic_values(trainer, torch.tensor(xs, dtype=torch.float32)[:, None]).numpy()
        ax2.plot(xs, d, color="tab:blue", label="D(x)")
        gz = g[:: max(1, len(g) // 40)]
        dgz = critic_values(trainer, torch.tensor(gz, dtype=torch.float32)[:, None]).numpy()
        ax2.scatter(gz, dgz, marker="x", color="tab:red", s=14, label="D(G(z))")
        if getattr(trainer.objective, "probabilistic", False):
            ax2.set_ylim(0, 1.05)
            ax2.axhline(0.5, color="gray", lw=0.5)
        ax.set(xlim=(lo, hi), xlabel="x", ylabel="density")
        ax2.set_ylabel("discriminator")
        lines = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
        ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=7, loc="upper left")

    def _mapping(self, ax, trainer):
        latent = trainer.objective.latent
        if latent.dim != 1:
            ax.set_title("G(z) (z is not 1-D)")
            return
        z = torch.linspace(-1, 1, 300)[:, None] if latent.dist == "uniform" else \
            torch.linspace(-3, 3, 300)[:, None]
        gz = trainer.generate({"z": z.to(trainer.device)}).float().cpu().numpy().ravel()
        u = (z.numpy().ravel() + 1) / 2 if latent.dist == "uniform" else stats.norm.cdf(z.numpy().ravel())
        u = np.clip(u, 1e-4, 1 - 1e-4)
        ax.plot(z.numpy().ravel(), gz, color="tab:green", label="learned G(z)")
        ax.plot(z.numpy().ravel(), trainer.data.inverse_cdf(u), "k--", label="F^-1(u(z))")
        ax.plot(z.numpy().ravel(), trainer.data.inverse_cdf(1 - u), ":", color="gray",
                label="F^-1(1-u(z)) (mirror)")
        ax.set(xlabel=f"z ~ {'U[-1,1]' if latent.dist == 'uniform' else 'N(0,1)'}",
               ylabel="x", title="generator map vs inverse CDF")
        ax.legend(fontsize=7)

    def final_plots(self, trainer, folder: Path, rows: list[dict]) -> list[Path]:
        fig, ax = figure(3, 1, 4.2)
        g = trainer.sample(20000, seed=12345).numpy().ravel()
        self._densities(ax[0, 0], trainer, g)
        ax[0, 0].set_title(f"densities and D, step {trainer.c.step}")
        self._mapping(ax[0, 1], trainer)
        for key in sorted({k for r in rows for k in r if k.startswith("loss/")}):
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            ax[0, 2].plot(*zip(*pts), label=key)
        ax[0, 2].set(title="losses", xlabel="generator step")
        if ax[0, 2].lines:
            ax[0, 2].legend(fontsize=7)
        return [save(fig, folder / "gaussian1d.png"), curves(rows, folder / "losses.png")]
