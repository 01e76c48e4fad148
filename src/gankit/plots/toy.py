"""Figures for the toy problems: the course-slide 1-D picture and 2-D mixture diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import stats

from gankit.core import capabilities as caps
from gankit.data.base import make_generator
from gankit.plots.common import Figure, curves, draw_figures, figure, metric_curves, save

DATA_SEED = 999


def critic_values(trainer, x: torch.Tensor) -> torch.Tensor:
    """The critic map at points x (n, d) -> (n,) on the CPU (capability "critic")."""
    return trainer.objective.critic_map(x.to(trainer.device)).float().cpu()


def critic_label(trainer) -> str:
    return "D(x)" if trainer.objective.critic_is_probability else "critic D(x)"


class Toy2DView:
    """2-D mixtures: samples over the data, the critic's map and G's gradient field, the
    model's log-likelihood, losses and mode metrics (each drawn when the model offers it)."""

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
        figures = [
            Figure("samples", self._samples),
            Figure("critic_and_gradient_field", self._critic_and_field,
                   frozenset({caps.SAMPLES, caps.CRITIC})),
            Figure("log_likelihood", self._likelihood, frozenset({caps.LIKELIHOOD})),
            Figure("losses", lambda t, f, r: curves(r, f / "losses.png"), frozenset()),
            Figure("mode_metrics", lambda t, f, r: metric_curves(
                r, ["modes", "hq_fraction", "kl"], f / "mode_metrics.png"), frozenset()),
        ]
        return draw_figures(figures, trainer, folder, rows)

    def _samples(self, trainer, folder: Path, rows) -> Path:
        name = trainer.cfg.data.name
        fig, ax = figure()
        self._scatter(ax[0, 0], trainer, trainer.sample(2500, seed=12345).numpy())
        ax[0, 0].set_title(f"{name}: samples over data, step {trainer.c.step}")
        return save(fig, folder / f"{name}_samples.png")

    @staticmethod
    def _grid(trainer, k: int) -> tuple[torch.Tensor, tuple[float, float]]:
        lo, hi = trainer.data.bounds
        ticks = torch.linspace(lo, hi, k)
        gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
        return torch.stack([gx.flatten(), gy.flatten()], 1), (lo, hi)     # (k*k, 2)

    def _critic_and_field(self, trainer, folder: Path, rows) -> Path:
        x = trainer.sample(2500, seed=12345).numpy()
        grid, (lo, hi) = self._grid(trainer, 200)
        values = critic_values(trainer, grid).view(200, 200).numpy()
        pts, _ = self._grid(trainer, 21)
        push = trainer.objective.generator_field(pts.to(trainer.device)).float().cpu()
        push = push / (push.norm(dim=1, keepdim=True).max() + 1e-12)
        fig, ax = figure(2, 1, 4.5)
        im = ax[0, 0].imshow(values, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis")
        fig.colorbar(im, ax=ax[0, 0], fraction=0.046)
        ax[0, 0].scatter(x[:, 0], x[:, 1], s=1, c="white", alpha=0.5)
        ax[0, 0].set_title(f"{critic_label(trainer)} with generated samples")
        real = trainer.data.sample(1000, DATA_SEED).numpy()
        ax[0, 1].scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.4)
        ax[0, 1].quiver(pts[:, 0], pts[:, 1], push[:, 0], push[:, 1], color="tab:red",
                        angles="xy", scale_units="xy", scale=1.5 / ((hi - lo) / 20))
        ax[0, 1].set(title="generator gradient field  -grad L_G", xlim=(lo, hi), ylim=(lo, hi),
                     aspect="equal")
        return save(fig, folder / "critic_and_gradient_field.png")

    def _likelihood(self, trainer, folder: Path, rows) -> Path:
        grid, (lo, hi) = self._grid(trainer, 200)
        with torch.no_grad():
            logp = trainer.objective.log_likelihood(grid.to(trainer.device),
                                                    trainer.sampler()).float().cpu()
        fig, ax = figure(1, 1, 4.5)
        im = ax[0, 0].imshow(logp.view(200, 200).clamp_min(logp.max() - 20).numpy(),
                             origin="lower", extent=(lo, hi, lo, hi), cmap="magma")
        fig.colorbar(im, ax=ax[0, 0], fraction=0.046, label="log p(x) (nats)")
        real = trainer.data.sample(1000, DATA_SEED).numpy()
        ax[0, 0].scatter(real[:, 0], real[:, 1], s=1, c="cyan", alpha=0.4)
        ax[0, 0].set(title=f"model log-likelihood, step {trainer.c.step}", aspect="equal")
        return save(fig, folder / "log_likelihood.png")


class Gaussian1DView:
    """The course-slide 1-D figure: p_data, the histogram of p_g, D(x) and D(G(z)) (when the
    model has a critic), the learned G(z) against the inverse CDF (for a 1-D latent), losses."""

    def save_samples(self, x: torch.Tensor, path: Path, trainer=None) -> Path:
        fig, ax = figure(1, 1, 3.5)
        self._densities(ax[0, 0], trainer, trainer.sample(5000, seed=12345).numpy().ravel())
        ax[0, 0].set_title(f"step {trainer.c.step}")
        return save(fig, path)

    def _densities(self, ax, trainer, g: np.ndarray):
        lo, hi = trainer.data.bounds
        xs = np.linspace(lo, hi, 400)
        ax.plot(xs, trainer.data.pdf(xs), "k--", label="p_data")
        if ((g >= lo) & (g <= hi)).any():      # else numpy divides 0 by 0 (nothing to draw)
            ax.hist(g, bins=80, range=(lo, hi), density=True, color="tab:green", alpha=0.5,
                    label="p_g (samples)")
        ax.set(xlim=(lo, hi), xlabel="x", ylabel="density")
        handles, labels = ax.get_legend_handles_labels()
        if caps.CRITIC in trainer.objective.offers:
            ax2 = ax.twinx()
            d = critic_values(trainer, torch.tensor(xs, dtype=torch.float32)[:, None]).numpy()
            ax2.plot(xs, d, color="tab:blue", label=critic_label(trainer))
            gz = g[:: max(1, len(g) // 40)]
            dgz = critic_values(trainer, torch.tensor(gz, dtype=torch.float32)[:, None]).numpy()
            ax2.scatter(gz, dgz, marker="x", color="tab:red", s=14, label="D(G(z))")
            if trainer.objective.critic_is_probability:
                ax2.set_ylim(0, 1.05)
                ax2.axhline(0.5, color="gray", lw=0.5)
            ax2.set_ylabel("discriminator")
            more = ax2.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(handles, labels, fontsize=7, loc="upper left")

    def _mapping(self, ax, trainer):
        latent = getattr(trainer.objective, "latent", None)
        if caps.LATENT not in trainer.objective.offers or latent is None or latent.dim != 1:
            ax.set_title("G(z) (z is not 1-D)")
            return
        z = torch.linspace(-1, 1, 300)[:, None] if latent.dist == "uniform" else \
            torch.linspace(-3, 3, 300)[:, None]
        # the model's other inputs (codes, labels) held at one draw, z swept
        base = trainer.objective.sample_inputs(1, make_generator(DATA_SEED, trainer.device))
        inputs = {k: v.repeat_interleave(len(z), 0) for k, v in base.items()}
        inputs["z"] = z.to(trainer.device)
        gz = trainer.generate(inputs).float().cpu().numpy().ravel()
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
        return draw_figures([Figure("gaussian1d", self._slide),
                             Figure("losses", lambda t, f, r: curves(r, f / "losses.png"),
                                    frozenset())], trainer, folder, rows)

    def _slide(self, trainer, folder: Path, rows: list[dict]) -> Path:
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
        return save(fig, folder / "gaussian1d.png")
