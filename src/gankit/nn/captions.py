"""Networks of text-to-image GANs (Reed et al. 2016, "Generative adversarial text to image
synthesis"), CPU-sized: a caption encoder, a conditioned generator, a matching-aware critic.

* Text encoder (``TextEncoderRole``): token embedding (``embed_dim``) then a GRU (``text_dim``
  units; Cho et al. 2014); the caption's embedding is the GRU state after its last word
  (padding, id 0, comes after the words and is not read). Reed et al. pretrain a char-CNN-RNN;
  here it trains with the critic (the objective decides).
* Generator (``ConditionedGeneratorRole``): [z, c] -> linear -> (2^(n-1) ngf, R/2^n, R/2^n)
  -> n = ``levels`` 4x4 stride-2 transposed convolutions (``g_upsample=nearest``: nearest
  upsampling + 3x3 convolution) halving the width (batch norm, ReLU; tanh out), the DCGAN
  path (Radford et al. 2016) for any side R divisible by 2^n (n = 2: 60, 56, 48, 32, 28;
  n = 3: 56, 48, 32).
* Critic (``ConditionedCriticRole``): n 4x4 stride-2 convolutions doubling the width
  (LeakyReLU 0.2; layer norm from the second on, so each sample is judged alone: the
  objective scores real, mismatched and fake pairs in one batch) to (2^(n-1) ndf, R/2^n,
  R/2^n); c, projected to ``ndf`` values, is replicated over that map and concatenated (Reed
  et al.'s "depth concatenation"); a ``mix_kernel`` convolution mixes them, a linear layer
  reads the map: one logit. The linear read keeps where things are, which a caption about
  positions needs. With n = 2 a feature of the map sees 10 x 10 pixels, less than a digit
  (28): n = 3 (22 pixels) and a 3 x 3 mix (38) let D tell which digit sits in a slot. When
  the role asks (``vocab`` > 0), a second linear layer reads the caption's tokens off the
  image map before c joins it (the objective's caption loss).

With ``slots`` = K > 0 the encoder and the generator are factorised into *what* and *where*
(in the spirit of alignDRAW's attention, Mansimov et al. 2016, and of the object-wise
generators of Reed et al. 2016b, "Learning what and where to draw"), so that a caption
combining a digit and a place never seen together still draws:

* Slot encoder: the words that name things (the data's ``content_ids``: the digits) are
  replaced by one placeholder word before a bidirectional GRU reads the caption, so its
  states say where and never which digit. Slot k takes the caption's k-th content word:
  what_k its embedding, where_k the GRU state at its position (which knows the whole
  template and the word's role in it), and a flag (0 when the caption names fewer than k
  things). c = [what_1, where_1, flag_1, ..., what_K, where_K, flag_K]
  (B, K (embed_dim + text_dim + 1)).
* Slot generator: each slot draws a digit-sized ink patch from (its own linear map of z,
  what_k) alone (a DCGAN path of two upsampling stages from digit/4; sigmoid), and places it
  on the canvas with a distribution over the top-left corner that where_k alone decides
  (row and column softmaxes, their outer product; the patch is added at every corner with
  that weight: two matrix products), times the slot's flag. Slots combine
  by maximum (as the data's digits do). The drawing never sees the place and the placing
  never sees the digit: a held-out (digit, place) caption gets exactly the parts the seen
  captions trained (in training, the drawing's batch norm pools all the batch's patches,
  empty slots included; sampling uses its running statistics). GAN-INT's interpolation
  (``objective.interpolation``) averages slot vectors, flags included: not meaningful here.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.distributed as dist
from pydantic import BeforeValidator, Field
from torch import Tensor, nn

from gankit.core.roles import ConditionedCriticRole, ConditionedGeneratorRole, TextEncoderRole
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.dcgan import init_weights, up2
from gankit.params import Params, not_bool


class CaptionsParams(Params):
    name: Literal["captions"] = "captions"
    z_dim: int = Field(32, gt=0, le=4096)
    z_dist: Literal["normal", "uniform"] = "normal"
    ngf: int = Field(32, gt=0, le=1024)          # G width at its last hidden layer
    ndf: int = Field(32, gt=0, le=1024)          # D width at its first layer
    embed_dim: int = Field(32, gt=0, le=1024)    # token embedding
    text_dim: int = Field(64, gt=0, le=1024)     # caption embedding (GRU state)
    levels: int = Field(2, ge=2, le=4)           # stride-2 stages of G and D
    # D's image-caption mixing convolution: 1 x 1 or 3 x 3
    mix_kernel: Annotated[Literal[1, 3], BeforeValidator(not_bool)] = 1
    # G's upsampling: 4x4 transposed convolutions, or nearest + 3x3 (Odena et al. 2016)
    g_upsample: Literal["transposed", "nearest"] = "transposed"
    # 0: GRU caption encoder and one DCGAN path for the canvas (Reed et al.); K: the what /
    # where factorised slot encoder and generator with K digit slots (module docstring)
    slots: int = Field(0, ge=0, le=4)


def caption_dim(p: CaptionsParams) -> int:
    """The size of the family's caption embedding: text_dim, or K (embed_dim + text_dim + 1)."""
    return p.slots * (p.embed_dim + p.text_dim + 1) if p.slots else p.text_dim


def check_image(info: DataInfo, levels: int = 2) -> None:
    """ConfigError unless the data are square images whose side is a multiple of
    2^``levels``."""
    shape, step = info.shape, 2 ** levels
    if info.kind != "image" or len(shape) != 3 or shape[1] != shape[2] or shape[1] % step:
        raise ConfigError(f"the captions network with model.levels={levels} takes square "
                          f"images whose side is a multiple of {step}, not {info.kind} data "
                          f"of shape {tuple(shape)}")


class TextEncoder(nn.Module):
    """Token ids (B, L) int64, right-padded with 0 -> caption embeddings (B, out_dim).

    A GRU cell stepped over the words: ``nn.GRU``'s CPU kernel gives other last bits when its
    weights do not require gradients (as in the trainer's G phase), so samples would differ
    between the trainer and a loaded run; the cell's are the same either way."""

    def __init__(self, vocab: int, embed_dim: int, out_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=0)
        self.cell = nn.GRUCell(embed_dim, out_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        words = self.embed(tokens)                                     # (B, L, embed_dim)
        return gru_states(self.cell, words, tokens != 0, range(tokens.shape[1]))[-1]


def gru_states(cell: nn.GRUCell, words: Tensor, real: Tensor, steps) -> list[Tensor]:
    """The states (B, hidden) of ``cell`` after each of ``steps`` over words (B, L, E), in
    position order; where ``real`` (B, L) is False (padding) a step keeps the state."""
    h, out = words.new_zeros(len(words), cell.hidden_size), {}
    for t in steps:
        h = out[t] = torch.where(real[:, t, None], cell(words[:, t], h), h)
    return [out[t] for t in sorted(out)]


class SlotEncoder(nn.Module):
    """Token ids (B, L) int64, right-padded with 0 -> K what/where slots flattened,
    (B, K (embed_dim + text_dim + 1)) (module docstring). ``content_ids``: the vocabulary ids
    of the words naming what is drawn; the where path reads them all as one placeholder."""

    def __init__(self, vocab: int, content_ids: tuple[int, ...], embed_dim: int,
                 text_dim: int, slots: int):
        super().__init__()
        self.slots = slots
        self.what = nn.Embedding(vocab, embed_dim, padding_idx=0)
        self.where = nn.Embedding(vocab + 1, embed_dim, padding_idx=0)   # id vocab: content
        self.forward_cell = nn.GRUCell(embed_dim, text_dim)
        self.backward_cell = nn.GRUCell(embed_dim, text_dim)
        self.state = nn.Linear(2 * text_dim, text_dim)
        content = torch.zeros(vocab, dtype=torch.bool)
        content[list(content_ids)] = True
        self.register_buffer("content", content, persistent=False)   # from the data's info

    def forward(self, tokens: Tensor) -> Tensor:
        is_content, real = self.content[tokens], tokens != 0           # (B, L) each
        place_words = self.where(tokens.masked_fill(is_content, self.where.num_embeddings - 1))
        n = tokens.shape[1]
        fwd = gru_states(self.forward_cell, place_words, real, range(n))
        bwd = gru_states(self.backward_cell, place_words, real, reversed(range(n)))
        states = self.state(torch.cat([torch.stack(fwd, 1), torch.stack(bwd, 1)], 2))  # (B, L, D)
        order = is_content.cumsum(1) * is_content              # k at the k-th content word
        ks = torch.arange(1, self.slots + 1, device=tokens.device)
        pick = (order[:, None, :] == ks[None, :, None]).to(states.dtype)           # (B, K, L)
        what, where = pick @ self.what(tokens), pick @ states          # (B, K, E), (B, K, D)
        return torch.cat([what, where, pick.sum(2, keepdim=True)], 2).flatten(1)


class SlotNorm(nn.Module):
    """Standardises each slot's where (B, K, D) over the batch rows that name a thing (flag
    (B, K, 1) = 1), per slot and feature, as batch norm does (running statistics for
    evaluation, momentum 0.1): what the captions share, including which slot a row is and
    whether it is empty, leaves the place layer's input. ``sync_stats`` (set by
    ``train.sync_bn`` with batch norm's conversion): statistics over every process's rows."""

    def __init__(self, slots: int, dim: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.sync_stats = False
        self.register_buffer("running_mean", torch.zeros(slots, dim))
        self.register_buffer("running_var", torch.ones(slots, dim))

    def forward(self, where: Tensor, flag: Tensor) -> Tensor:
        w, flag = where.float(), flag.float()                  # statistics in fp32 (AMP)
        if self.training:
            count, n, mean, var = self.batch_stats(w, flag)
            with torch.no_grad():             # a slot no caption of the batch names: kept
                seen = count > 0
                self.running_mean.copy_(torch.where(
                    seen, self.running_mean.lerp(mean, self.momentum), self.running_mean))
                self.running_var.copy_(torch.where(seen, self.running_var.lerp(
                    var * n / (n - 1).clamp_min(1), self.momentum), self.running_var))
        else:
            mean, var = self.running_mean, self.running_var
        return ((w - mean) / (var + self.eps).sqrt()).to(where.dtype)

    def batch_stats(self, w: Tensor, flag: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Rows naming each slot (K, 1), the same at least 1, their mean and (biased)
        variance (K, D), two-pass (exact when the mean is large next to the spread): over this
        batch, or every process's (``sync_stats``: collectives, also in backward, so each
        process's rows get the gradient of the sum of every process's loss)."""
        total = sum_over_processes if self.sync_stats else (lambda t: t)
        count = total(flag.sum(0))                                        # (K, 1)
        n = count.clamp_min(1)
        mean = total((w * flag).sum(0)) / n                               # (K, D)
        return count, n, mean, total(((w - mean).square() * flag).sum(0)) / n


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient: d(sum of every process's
    loss) / d(this process's input)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


@torch.compiler.disable
def sum_over_processes(x: Tensor) -> Tensor:
    """x summed over the processes of the default group, differentiably (backward sums the
    gradients too, as SyncBatchNorm does); x itself outside a process group. A collective:
    every process must call it, in forward and in backward."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _SumOverProcesses.apply(x)


def shift_matrix(weights: Tensor, size: int) -> Tensor:
    """(N, P) weights over offsets -> (N, P + size - 1, size) M with M[y, a] = weights[y - a]
    (0 outside): M @ patch puts the patch at every offset with its weight."""
    n, p = weights.shape
    padded = nn.functional.pad(weights, (size - 1, size - 1))             # (N, P + 2 size - 2)
    y = torch.arange(p + size - 1, device=weights.device)[:, None]
    a = torch.arange(size, device=weights.device)[None]
    return padded[:, y - a + size - 1]


class SlotGenerator(nn.Module):
    """z (B, z_dim), c (B, K (embed_dim + text_dim + 1)) slots of ``SlotEncoder`` -> canvases
    (B, 1, R, R) in [-1, 1]: each slot's ink patch (digit x digit), drawn from z and what_k,
    placed where where_k says (module docstring)."""

    GAIN = 3.0        # of the placement logits: a corner's softmax can sharpen in ~1k steps

    def __init__(self, z_dim: int, embed_dim: int, text_dim: int, slots: int, canvas: int,
                 digit: int, ngf: int, upsample: str = "transposed"):
        super().__init__()
        self.sizes, self.slots, self.z_dim = (embed_dim, text_dim, 1), slots, z_dim
        self.digit, self.corners = digit, canvas - digit + 1
        self.base, self.width = digit // 4, 2 * ngf
        self.style = nn.Linear(z_dim, slots * z_dim)                   # z -> one per slot
        self.project = nn.Linear(z_dim + embed_dim, self.width * self.base ** 2, bias=False)
        self.draw = nn.Sequential(nn.BatchNorm2d(self.width), nn.ReLU(True),
                                  up2(self.width, ngf, upsample), nn.BatchNorm2d(ngf),
                                  nn.ReLU(True), up2(ngf, 1, upsample))
        # where_k standardised per slot over the captions naming it, and no bias: only the
        # captions' differences move the place (a shared preference saturates every caption's
        # softmax at one corner before D can tell places apart, and it stays there)
        self.where_norm = SlotNorm(slots, text_dim)
        self.place = nn.Linear(text_dim, 2 * self.corners, bias=False)  # row, column logits
        init_weights(self)
        # ink starts near MNIST's mean (sigmoid(-2) = 0.12), not at 0.5 everywhere
        self.ink_bias = nn.Parameter(torch.tensor(-2.0))

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        b, k = len(z), self.slots
        what, where, present = c.view(b, k, -1).split(self.sizes, 2)  # (B, K, E / D / 1)
        where = self.where_norm(where, present).flatten(0, 1)          # (BK, D)
        what, present = what.flatten(0, 1), present.flatten(0, 1)
        style = self.style(z).view(b * k, self.z_dim)
        h = self.project(torch.cat([style, what], 1)).view(-1, self.width, self.base, self.base)
        ink = torch.sigmoid(self.draw(h) + self.ink_bias)[:, 0]         # (BK, d, d)
        ink = ink * present[:, :, None]                                  # no word, no digit
        rows, cols = (self.GAIN * self.place(where)).view(b * k, 2, -1).softmax(2).unbind(1)
        placed = (shift_matrix(rows, self.digit) @ ink                  # (BK, R, R)
                  @ shift_matrix(cols, self.digit).transpose(1, 2))
        canvas = placed.view(b, k, *placed.shape[1:]).amax(1, keepdim=True)   # (B, 1, R, R)
        return 2 * canvas - 1


class ConditionedGenerator(nn.Module):
    """z (B, z_dim), c (B, cond_dim) -> images (B, C, R, R) in [-1, 1]."""

    def __init__(self, in_dim: int, shape: tuple[int, ...], ngf: int, levels: int = 2,
                 upsample: str = "transposed"):
        super().__init__()
        self.base, width = shape[1] // 2 ** levels, ngf * 2 ** (levels - 1)
        self.width = width
        self.project = nn.Sequential(nn.Linear(in_dim, width * self.base ** 2, bias=False))
        layers: list[nn.Module] = [nn.BatchNorm2d(width), nn.ReLU(True)]  # (B, w, R/2^n, .)
        for _ in range(levels - 1):                   # each doubles the side, halves the width
            layers += [up2(width, width // 2, upsample), nn.BatchNorm2d(width // 2),
                       nn.ReLU(True)]
            width //= 2
        layers += [up2(width, shape[0], upsample), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        h = self.project(torch.cat([z, c], 1))
        return self.main(h.view(-1, self.width, self.base, self.base))


class MatchingCritic(nn.Module):
    """images (B, C, R, R), c (B, cond_dim) -> logits (B,): real and matching c; with
    ``read=True`` (built with ``tokens`` = (length, vocab)) also the caption's token logits
    (B, length, vocab) read off the image alone: (logits, token logits)."""

    def __init__(self, shape: tuple[int, ...], ndf: int, cond_dim: int, levels: int = 2,
                 mix_kernel: int = 1, tokens: tuple[int, int] = (0, 0)):
        super().__init__()
        self.base, width = shape[1] // 2 ** levels, ndf
        layers: list[nn.Module] = [nn.Conv2d(shape[0], ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(levels - 1):                   # each halves the side, doubles the width
            layers += [nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
                       nn.GroupNorm(1, 2 * width), nn.LeakyReLU(0.2, True)]
            width *= 2
        self.trunk = nn.Sequential(*layers)                     # (B, w, R/2^n, R/2^n)
        self.cond = nn.Sequential(nn.Linear(cond_dim, ndf), nn.LeakyReLU(0.2, True))
        self.mix = nn.Sequential(nn.Conv2d(width + ndf, width, mix_kernel,
                                           padding=mix_kernel // 2, bias=False),
                                 nn.GroupNorm(1, width), nn.LeakyReLU(0.2, True))
        self.head = nn.Linear(width * self.base ** 2, 1)
        self.tokens = tokens                                    # (length, vocab) read off x
        if tokens[1]:
            self.reader = nn.Linear(width * self.base ** 2, tokens[0] * tokens[1])
        init_weights(self)

    def forward(self, x: Tensor, c: Tensor, read: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.trunk(x)
        e = self.cond(c)[:, :, None, None].expand(-1, -1, self.base, self.base)
        logits = self.head(self.mix(torch.cat([h, e], 1)).flatten(1)).flatten()
        if not read:
            return logits
        if not self.tokens[1]:
            raise ValueError("this critic was built without a caption reader (role vocab 0)")
        return logits, self.reader(h.flatten(1)).view(len(x), *self.tokens)   # (B, L, V)


# A role's embedding size 0 (out_dim, cond_dim) leaves it to the family: ``text_dim``, or
# with slots ``caption_dim`` (the only size a slot encoder makes and a slot generator reads).
def _check_slot_size(p: CaptionsParams, size: int, what: str) -> None:
    if size and size != caption_dim(p):
        raise ConfigError(f"model.slots={p.slots} makes captions of size {caption_dim(p)}, "
                          f"but the objective asks for a {what} of size {size}")


def build_encoder(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    if p.slots:
        _check_slot_size(p, role.out_dim, "caption embedding")
        return SlotEncoder(role.vocab, info.content_ids, p.embed_dim, p.text_dim, p.slots)
    return TextEncoder(role.vocab, p.embed_dim, role.out_dim or p.text_dim)


def build_generator(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    if p.slots:
        _check_slot_size(p, role.cond_dim, "generator condition")
        return SlotGenerator(role.z_dim, p.embed_dim, p.text_dim, p.slots, info.canvas,
                             info.digit, p.ngf, p.g_upsample)
    return ConditionedGenerator(role.z_dim + (role.cond_dim or p.text_dim), info.shape, p.ngf,
                                p.levels, p.g_upsample)


def build_critic(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    return MatchingCritic(info.shape, p.ndf, role.cond_dim or caption_dim(p), p.levels,
                          p.mix_kernel, (role.length, role.vocab))


class CaptionsFamily:
    """Text to image (Reed 2016): GRU caption encoder, conditioned DCGAN-like G and D."""

    Params = CaptionsParams
    data_kinds = ("image",)
    builders = {TextEncoderRole: build_encoder, ConditionedGeneratorRole: build_generator,
                ConditionedCriticRole: build_critic}

    @staticmethod
    def check_roles(p: CaptionsParams, info: DataInfo, roles: dict) -> None:
        """What it cannot train: a slot generator fed midpoints of captions (GAN-INT), whose
        slot flags (named or not: 0 or 1) would be halves."""
        if p.slots and any(getattr(role, "midpoints", 0) for role in roles.values()):
            raise ConfigError("objective.interpolation (GAN-INT) feeds G midpoints of two "
                              "captions, and a midpoint of slot captions (model.slots) is not a "
                              "caption (half-named digits): set model.slots=0 or "
                              "objective.interpolation=0")

    @staticmethod
    def check(p: CaptionsParams, info: DataInfo) -> None:
        check_image(info, p.levels)
        if p.slots and (not getattr(info, "content_ids", ()) or getattr(info, "digit", 0) % 4
                        or info.shape[0] != 1):
            raise ConfigError("model.slots needs one-channel captioned canvases whose digits "
                              "have a side divisible by 4 (data: mnist-captions, a canvas whose "
                              "digit side min(28, canvas / 2) is, e.g. 32, 48, 56, 60); "
                              "model.slots=0 takes any captioned images")
        named = max((len(info.slots(t)) for t in getattr(info, "templates", ())), default=0)
        if p.slots and p.slots < named:
            raise ConfigError(f"model.slots={p.slots} draws fewer digits than the captions "
                              f"name (up to {named}): set model.slots={named}")
