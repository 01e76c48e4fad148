"""Network roles: what an objective needs a network to be, as typed specs.

An objective asks for roles by name (``{"G": GeneratorRole(...), "D": CriticRole(...)}``); a
network family (``gankit.nn``) registers one builder per role type it supports, and
``build_nets`` calls them. Objectives never construct networks and networks never see losses.

Two properties are said explicitly on every role instead of being inferred from its layers:
``double_backward`` (its outputs are differentiated twice: gradient penalties, unrolled
updates; torch.compile cannot do that) and ``compilable`` (``train.compile`` may wrap it).
A critic that must not mix samples through batch statistics (a per-sample gradient
penalty) says so with ``CriticRole.per_sample``; one whose intermediate features an objective
reads (feature matching) asks for them with ``CriticRole.features``, and ``build_nets``
refuses a family whose network does not offer what its role asks (``Role.lacks``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, make_dataclass
from typing import Any, Callable, ClassVar, Mapping

from torch import nn

from gankit.data.base import DataInfo
from gankit.errors import ConfigError


@dataclass(frozen=True)
class Role:
    """Base of every role spec."""

    kind: ClassVar[str] = "role"     # each spec names its own: class X(Role, kind="critic")
    compilable: bool = True          # train.compile may wrap it
    double_backward: bool = False    # differentiated twice (gradient penalty, unrolling)

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind

    @property
    def may_compile(self) -> bool:
        """AOTAutograd has no double backward, so such nets always run eagerly."""
        return self.compilable and not self.double_backward

    def lacks(self, net: nn.Module) -> str | None:
        """What the built ``net`` fails to offer that this role asks for (None: nothing)."""
        return None


@dataclass(frozen=True)
class GeneratorRole(Role, kind="generator"):
    """z (B, z_dim) [+ codes (B, code_dim)] [+ labels (B,)] -> samples (B, *data shape)."""

    z_dim: int = 0                   # the resolved latent size (model.z_dim)
    code_dim: int = 0                # extra inputs concatenated onto z (InfoGAN codes)
    num_classes: int = 0             # one-hot labels fed in (conditional G)

    @property
    def in_dim(self) -> int:
        return self.z_dim + self.code_dim


@dataclass(frozen=True)
class CriticRole(Role, kind="critic"):
    """x (B, *shape) [+ labels (B,)] -> logits / critic values (B,) or (B, out_dim).

    ``per_sample``: no statistics across the batch (no batch norm), which a gradient penalty
    needs (Gulrajani et al. 2017). ``reads``: the data domains it reads, concatenated on
    channels (translation critics; empty = the data's own ``x``). ``features``: the net also
    returns an intermediate layer, ``D(x[, y], features=True) -> (outputs, f (B, F))`` with f
    the activations of its last hidden layer (feature matching, Salimans et al. 2016)."""

    out_dim: int = 1                 # 1 + auxiliary heads (AC-GAN classes, InfoGAN's Q)
    num_classes: int = 0             # projection discriminator (Miyato & Koyama 2018)
    per_sample: bool = False
    reads: tuple[str, ...] = ()
    features: bool = False

    def lacks(self, net: nn.Module) -> str | None:
        if self.features and "features" not in inspect.signature(net.forward).parameters:
            return "intermediate features (forward(..., features=True))"
        return None


@dataclass(frozen=True)
class TranslatorRole(Role, kind="translator"):
    """Images of the domains it ``reads`` (concatenated on channels) -> images of ``writes``."""

    reads: tuple[str, ...] = ("a",)
    writes: str = "b"


def role_spec(name: str, kind: str, doc: str, base: type = Role, **fields: Any) -> type:
    """A frozen role dataclass ``name`` of ``kind`` with int ``fields`` (default values)."""
    return make_dataclass(name, [(f, type(v), v) for f, v in fields.items()], bases=(base,),
                          frozen=True, namespace={"__doc__": doc, "kind": kind,
                                                  "__module__": __name__})


# The roles of the density models and the text systems, one line each: their fields are sizes.
EncoderRole = role_spec(
    "EncoderRole", "encoder", "x (B, *shape) -> (B, out_dim), e.g. the mean and log-variance of "
    "a Gaussian q(z|x) (out_dim = 2 z_dim).", z_dim=0, out_dim=0)
DecoderRole = role_spec(
    "DecoderRole", "decoder", "z (B, z_dim) -> the parameters of p(x|z), (B, *shape) with no "
    "output squashing: Bernoulli logits or Gaussian means (a VAE's decoder).", z_dim=0)
AutoencoderRole = role_spec(
    "AutoencoderRole", "autoencoder", "x (B, *shape) -> its reconstruction, same shape, through "
    "a code_dim bottleneck (BEGAN's discriminator).", code_dim=0)
DensityRole = role_spec(
    "DensityRole", "density", "A density model: a log-likelihood per example and sampling, "
    "without a latent z (PixelCNN, a mixture).")
AutoregressiveRole = role_spec(
    "AutoregressiveRole", "autoregressive density", "x (B, C, H, W) -> logits (B, levels, C, "
    "H, W) of each pixel given the pixels before it in raster order (PixelCNN); levels 1: a "
    "Bernoulli logit per pixel, levels 256: a softmax over grey levels.", DensityRole,
    levels=0)
SequenceRole = role_spec(
    "SequenceRole", "sequence", "Base of the roles over sequences of length tokens from a vocab.",
    length=0, vocab=0)
SequenceGeneratorRole = role_spec(
    "SequenceGeneratorRole", "sequence generator", "z (B, z_dim) -> (B, length, vocab) "
    "distributions over tokens.", SequenceRole, z_dim=0)
SequenceCriticRole = role_spec(
    "SequenceCriticRole", "sequence critic", "(B, length, vocab) one-hot or soft tokens -> "
    "critic values (B,).", SequenceRole)
TextEncoderRole = role_spec(
    "TextEncoderRole", "text encoder", "Token ids (B, length) -> an embedding (B, out_dim) "
    "(text-conditioned generation).", SequenceRole, out_dim=0)
ConditionedGeneratorRole = role_spec(
    "ConditionedGeneratorRole", "conditioned generator", "z (B, z_dim), c (B, cond_dim) -> "
    "samples (B, *shape): a generator conditioned on a vector, e.g. a caption's embedding. "
    "midpoints 1: it is also fed midpoints of two conditions (GAN-INT).",
    z_dim=0, cond_dim=0, midpoints=0)
ConditionedCriticRole = role_spec(
    "ConditionedCriticRole", "conditioned critic", "x (B, *shape), c (B, cond_dim) -> logits "
    "(B,): whether x is real and matches c (a matching-aware discriminator). With vocab > 0 "
    "it also reads the caption off the image: forward(x, c, read=True) -> (logits (B,), token "
    "logits (B, length, vocab)), the reading independent of c.", cond_dim=0, length=0, vocab=0)


Builder = Callable[[Any, DataInfo, Any], nn.Module]
"""``builder(family params, data info, role) -> module``: one per role type a family builds."""


def build_nets(family: Any, params: Any, info: DataInfo,
               roles: Mapping[str, Role]) -> dict[str, nn.Module]:
    """One network per role, from the family's ``builders`` {role type: builder}.

    Raises ConfigError (one line) naming the role the family cannot build and the role
    kinds it does build."""
    builders: Mapping[type, Builder] = getattr(family, "builders", {})
    for name, role in roles.items():
        if type(role) not in builders:
            offered = ", ".join(sorted(r.kind for r in builders)) or "nothing"
            raise ConfigError(f"the {params.name} network cannot build a {role.kind} ({name}); "
                              f"it builds: {offered}")
    check = getattr(family, "check", None)
    if check is not None:           # a family-wide check of the data (e.g. supported sizes)
        check(params, info)
    nets = {name: builders[type(role)](params, info, role) for name, role in roles.items()}
    for name, role in roles.items():
        lacking = role.lacks(nets[name])
        if lacking:
            raise ConfigError(f"the {params.name} network's {role.kind} ({name}) does not offer "
                              f"{lacking}, which this objective needs")
    return nets


def reference_rows(net: nn.Module) -> int:
    """Rows of the fixed reference batch ``net`` still waits for (0: none, or recorded).

    A generator with virtual batch norm (Salimans et al. 2016, section 3.4) holds a module
    with a ``has_reference`` flag that records the first ``reference_rows`` inputs it is
    called with; objectives make that first call from their own inputs when they are built
    (``Objective.__init__``), so the reference batch follows the training noise (and its
    labels or codes) and is the same on every rank."""
    for m in net.modules():
        if hasattr(m, "has_reference") and not bool(m.has_reference):
            return int(m.reference_rows)
    return 0


def check_batch(family: Any, params: Any, info: DataInfo, roles: Mapping[str, Role],
                per_process: int, where: str) -> None:
    """ConfigError (one line) when a process would train some net of ``roles`` on fewer
    samples than the family declares it needs, with ``min_batch(params, info, role) -> int``
    (a family that declares nothing takes any batch). Batch norm (Ioffe & Szegedy 2015)
    divides by a variance over the batch and the map: one value per channel (a batch of one
    through a fully connected batch norm, or a 1x1 map) has none, and torch stops with
    "Expected more than 1 value per channel". ``where`` says where ``per_process`` comes from
    ('train.batch_size=1')."""
    declared = getattr(family, "min_batch", None)
    if declared is None:
        return
    need = {name: declared(params, info, role) for name, role in roles.items()}
    short = [name for name, n in need.items() if n > per_process]
    if short:
        most = max(need[name] for name in short)
        raise ConfigError(f"{where}: the {params.name} network's {' and '.join(short)} "
                          f"{'needs' if len(short) == 1 else 'need'} at least {most} samples "
                          "per process (batch norm over single values per channel); use a "
                          "larger train.batch_size")
