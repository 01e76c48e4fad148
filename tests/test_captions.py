"""MNIST with captions (alignDRAW protocol), GAN-CLS sampling from a caption, caption accuracy."""

from __future__ import annotations

import pytest
import torch

from cli_runner import run_cli
from gankit import api
from gankit.config import validate
from gankit.data.base import make_generator
from gankit.data.captions import (TEMPLATES, MNISTCaptions, MNISTCaptionsParams, compose,
                                  draw_specs, spec_text, spec_tokens, to_unit)
from gankit.errors import ConfigError
from gankit.metrics.captions import caption_correct
from gankit.train.trainer import Trainer

INFO = MNISTCaptions.describe(MNISTCaptionsParams())
TINY = {"data": {"name": "mnist-captions", "split": "test", "canvas": 28, "heldout_size": 8},
        "model": {"name": "captions", "z_dim": 4, "ngf": 4, "ndf": 4, "embed_dim": 4,
                  "text_dim": 4},
        "objective": {"name": "gan-cls"},
        "train": {"steps": 2, "batch_size": 8},
        "log": {"progress": False, "sample_at": [], "figures": False, "n_fixed": 4}}


def test_captions_are_parsed_into_the_run_vocabulary():
    caption = "the digit 7 is on the left of the digit 2"
    ids = INFO.encode(caption)
    assert ids.shape == (INFO.length,) and ids.dtype == torch.int64
    assert INFO.sentences(ids[None]) == [caption]
    assert torch.equal(INFO.encode("The digit 7 is on the LEFT of the digit 2."), ids)
    assert INFO.length == max(len(t.split()) for t, _ in TEMPLATES) == 11


def test_near_misses_change_the_digits_only():
    tokens = torch.stack([INFO.encode("the digit 7 is on the left of the digit 2"),
                          INFO.encode("the digit 0 is at the top left of the image")])
    for seed in range(5):
        miss = INFO.near_misses(tokens, make_generator(seed))
        for right, wrong in zip(INFO.sentences(tokens), INFO.sentences(miss)):
            changed = [(a, b) for a, b in zip(right.split(), wrong.split()) if a != b]
            assert len(right.split()) == len(wrong.split()) and changed
            assert all(a.isdigit() and b.isdigit() for a, b in changed)


@pytest.mark.parametrize("caption,message", [
    ("the digit seven is on the left", ("unknown word 'seven' in the caption; the vocabulary "
                                        "is: 0 1 2 3 4 5 6 7 8 9 at bottom digit image is left")),
    ("a digit 3 and a digit 4", "unknown words 'a', 'and', 'a'"),
    ("<pad>", "unknown word '<pad>'"),
    ("", "a caption has 1 to 11 words, not 0"),
    ("the digit 1 is at the top left of the image the digit", "not 13"),
])
def test_captions_outside_the_vocabulary_are_refused_in_one_line(caption, message):
    with pytest.raises(ConfigError, match=message) as err:
        INFO.encode(caption)
    assert "\n" not in str(err.value)


def test_heldout_combinations_follow_their_seed_and_stay_out_of_training(data_root):
    params = MNISTCaptionsParams(split="test", canvas=28)
    assert MNISTCaptions.describe(params).heldout == INFO.heldout          # the same seed
    other = MNISTCaptions.describe(MNISTCaptionsParams(heldout_seed=1)).heldout
    assert other != INFO.heldout and len(other) == len(INFO.heldout) == 16
    source = MNISTCaptions.build(params, seed=0)
    held = set(source.info.heldout)
    batch = source.draw(500, make_generator(0))
    seen = {10 * int(t) + int(a) for t, a, _ in batch["specs"].tolist()}
    assert not seen & held and len(seen) == 64
    assert torch.equal(batch["tokens"], spec_tokens(source.info, batch["specs"]))
    unseen = draw_specs(source.info, 200, make_generator(0), heldout=True)
    assert {10 * int(t) + int(a) for t, a, _ in unseen.tolist()} <= held


def test_the_stream_resumes_exactly_and_the_heldout_set_is_fixed(data_root):
    params = MNISTCaptionsParams(split="test", canvas=56, heldout_size=8)   # 28-px digits
    a, b = (MNISTCaptions.build(params, seed=3) for _ in range(2))
    a.next_batch(5)
    b.load_state_dict(a.state_dict())
    first, second = a.next_batch(7), b.next_batch(7)
    assert all(torch.equal(first[k], second[k]) for k in ("x", "tokens"))
    assert first["x"].shape == (7, 1, 56, 56) and float(first["x"].min()) == -1
    held = next(a.heldout().batches(8))
    assert held["x"].shape == (8, 1, 56, 56) and held["tokens"].shape == (8, 11)
    assert torch.equal(held["x"], next(b.heldout().batches(8))["x"])


def test_real_canvases_score_about_100_percent(data_root):
    """The metric's sanity check: real canvases of MNIST test digits, 56 px (MNIST's 28-px
    digits), seen and held-out combinations."""
    source = MNISTCaptions.build(MNISTCaptionsParams(split="test", canvas=56), seed=0)
    for heldout in (False, True):
        batch = source.draw(400, make_generator(1), heldout=heldout)
        accuracy = caption_correct(batch["x"], batch["specs"], source.info).float().mean()
        assert accuracy >= 0.97, (heldout, float(accuracy))


def test_wrong_digits_places_and_stray_ink_are_wrong(data_root):
    source = MNISTCaptions.build(MNISTCaptionsParams(split="test", canvas=56), seed=0)
    specs = torch.tensor([[0, 3, 0], [4, 7, 2]])              # top left; 7 left of 2
    gen = make_generator(5)
    good = to_unit(compose(source.info, specs, source.by_class, gen))
    assert caption_correct(good, specs, source.info).all(), [spec_text(s) for s in specs]
    swapped = torch.tensor([[1, 3, 0], [4, 2, 7]])              # the other corner; 2 left of 7
    assert not caption_correct(good, swapped, source.info).any()
    extra = torch.maximum(good[:1], to_unit(compose(source.info, torch.tensor(
        [[3, 8, 0]]), source.by_class, gen)))                   # an 8 more, bottom right
    assert not caption_correct(extra, specs[:1], source.info).any()
    blank = -torch.ones_like(good)
    assert not caption_correct(blank, specs, source.info).any()


def test_sample_draws_images_of_a_caption_and_refuses_unknown_words(tmp_path, data_root):
    run = tmp_path / "run"
    api.train(validate(TINY), run)
    x = api.sample(run, n=3, caption="the digit 3 is at the top left of the image")
    assert x.shape == (3, 1, 28, 28)
    code, out, err = run_cli(["sample", str(run), "--caption",
                              "the digit 7 is on the left of the digit 2", "--n", "16",
                              "--out", str(tmp_path / "grid.png")])
    assert code == 0 and "wrote 16 samples" in out and (tmp_path / "grid.png").stat().st_size
    assert "follows none" not in out
    for odd in ("1 2 3", "the", "the digit 7 is on the left of the digit"):
        code, out, err = run_cli(["sample", str(run), "--caption", odd, "--n", "2",
                                  "--out", str(tmp_path / "odd.png")])
        assert code == 0 and f"the caption {odd!r} follows none of the run's" in out, (odd, err)
    code, _, err = run_cli(["sample", str(run), "--caption", "a digit 7 on the left",
                            "--out", str(tmp_path / "bad.png")])
    assert code == 2 and err.count("\n") == 1 and "the vocabulary is: 0 1 2" in err
    assert not (tmp_path / "bad.png").exists()
    ring = Trainer(validate({"log": TINY["log"]}), None)       # a model without captions
    with pytest.raises(ConfigError, match="does not draw images from captions"), \
            ring.fixed_caption("the digit 1"):
        pass


def test_gan_cls_needs_captioned_data():
    from gankit.core.step import Latent
    from gankit.data.base import DataInfo
    from gankit.objectives.captions import GANCLS
    with pytest.raises(ConfigError, match="needs captioned images"):
        GANCLS.roles(GANCLS.Params(), DataInfo("image", (1, 28, 28)), Latent(4))


def test_mode_seeking_loss_is_the_inverse_ratio_of_image_and_noise_distances():
    from gankit.objectives.functional import mode_seeking_loss
    f1, f2 = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)   # d_I = 0.5
    z1, z2 = torch.zeros(2, 4), torch.full((2, 4), 2.0)                # d_z = 2
    assert mode_seeking_loss(f1, f2, z1, z2).item() == pytest.approx(1 / (0.25 + 1e-5))
    assert mode_seeking_loss(f1, f1, z1, z2).item() == pytest.approx(1e5)   # z ignored


def test_the_deeper_critic_reads_captions_off_images_and_checks_its_sides():
    from gankit.data.base import DataInfo
    from gankit.nn.captions import CaptionsParams, MatchingCritic, check_image
    D = MatchingCritic((1, 32, 32), 4, 6, levels=3, mix_kernel=3, tokens=(11, 30))
    logits, read = D(torch.randn(5, 1, 32, 32), torch.randn(5, 6), read=True)
    assert logits.shape == (5,) and read.shape == (5, 11, 30)
    assert torch.equal(D(torch.zeros(2, 1, 32, 32), torch.zeros(2, 6)),
                       D(torch.zeros(2, 1, 32, 32), torch.zeros(2, 6), read=True)[0])
    with pytest.raises(ValueError, match="without a caption reader"):
        MatchingCritic((1, 32, 32), 4, 6)(torch.zeros(1, 1, 32, 32), torch.zeros(1, 6), True)
    with pytest.raises(ConfigError, match="levels=3 takes square images whose side is a "
                                          "multiple of 8"):
        check_image(DataInfo("image", (1, 60, 60)), CaptionsParams(levels=3).levels)


def test_caption_reading_mode_seeking_and_r1_train_and_log(tmp_path, data_root):
    cfg = {**TINY, "data": {**TINY["data"], "canvas": 32},
           "model": {**TINY["model"], "levels": 3, "mix_kernel": 3, "g_upsample": "nearest"},
           "objective": {"name": "gan-cls", "caption_loss": 2.0, "mode_seeking": 1.0,
                         "r1_gamma": 1.0, "r1_interval": 1, "g_encoder": True}}
    trainer = Trainer(validate(cfg), None)
    before = {k: [p.detach().clone() for p in trainer.nets[k].parameters()] for k in ("E", "E_G")}
    trainer.phase_update("G")                  # G's step trains G's encoder, not D's
    moved = {k: any(not torch.equal(a, b) for a, b in zip(before[k], trainer.nets[k].parameters()))
             for k in before}
    assert moved == {"E": False, "E_G": True}
    before = {k: [p.detach().clone() for p in trainer.nets[k].parameters()]
              for k in ("G", "E_G", "E")}
    trainer.phase_update("D")                  # D's step trains D and E only
    moved = {k: any(not torch.equal(a, b) for a, b in zip(before[k], trainer.nets[k].parameters()))
             for k in before}
    assert moved == {"G": False, "E_G": False, "E": True}
    inputs = trainer.objective.sample_inputs(3, make_generator(0))
    with torch.no_grad():                      # samples read captions through E_G
        expected = trainer.nets["G"](inputs["z"], trainer.nets["E_G"](inputs["tokens"]))
    assert torch.equal(trainer.objective.generate(inputs), expected)
    assert trainer.nets["D"].reader.out_features == INFO.length * len(INFO.vocab)
    assert any(isinstance(m, torch.nn.Upsample) for m in trainer.nets["G"].modules())
    for _ in range(2):
        trainer.train_step()
    logged = trainer.pop_scalars()
    for key in ("loss/D_read", "loss/G_read", "loss/G_ms", "r1"):
        assert key in logged and logged[key] == logged[key] and logged[key] > 0, key


def test_an_averaged_G_reads_captions_through_the_averaged_E_G(tmp_path, data_root):
    cfg = {**TINY, "objective": {"name": "gan-cls", "g_encoder": True},
           "train": {**TINY["train"], "ema_beta": 0.5}}
    trainer = Trainer(validate(cfg), None)
    assert list(trainer.ema) == ["G", "E_G"]
    trainer.train_step()
    G, E_G = trainer.ema["G"].net, trainer.ema["E_G"].net
    assert not all(torch.equal(a, b) for a, b in zip(E_G.parameters(),
                                                     trainer.nets["E_G"].parameters()))
    inputs = trainer.objective.sample_inputs(3, make_generator(0))
    with torch.no_grad():
        expected = G(inputs["z"], E_G(inputs["tokens"]))
    assert torch.equal(trainer.generate(inputs), expected)
    assert trainer.objective.nets["E_G"] is trainer.nets["E_G"]      # put back afterwards
    state = trainer.state()
    del state["ema"]["E_G"]                  # a checkpoint from before E_G was averaged
    trainer.load_model_state(state)
    assert all(torch.equal(a, b) for a, b in zip(trainer.ema["E_G"].net.parameters(),
                                                 trainer.nets["E_G"].parameters()))
    without = Trainer(validate({**cfg, "objective": {"name": "gan-cls"}}), None)
    assert list(without.ema) == ["G"]


def test_gan_int_trains_on_midpoints_and_slot_captions_refuse_it(data_root):
    cfg = {**TINY, "objective": {"name": "gan-cls", "interpolation": 1.0, "g_encoder": True}}
    trainer = Trainer(validate(cfg), None)
    assert trainer.roles["G"].midpoints == 1
    trainer.train_step()
    assert trainer.pop_scalars()["loss/G_int"] > 0
    slots = {**cfg, "data": {**TINY["data"], "canvas": 32},
             "model": {**TINY["model"], "slots": 2}}
    with pytest.raises(ConfigError, match=r"^objective.interpolation \(GAN-INT\) feeds G "
                                          r"midpoints.*set model.slots=0 or objective.inter"):
        validate(slots)
    from gankit.config import from_saved           # a run trained so before stays readable
    assert from_saved(slots).model.slots == 2


def test_a_slot_puts_its_patch_at_each_corner_with_that_corner_weight():
    from gankit.nn.captions import shift_matrix
    patch = torch.rand(1, 4, 4)
    one_hot = torch.zeros(1, 5)
    one_hot[0, 3] = 1
    rows = shift_matrix(one_hot, 4)                                  # (1, 8, 4)
    cols = shift_matrix(torch.tensor([[0.5, 0, 0, 0, 0.5]]), 4)
    placed = rows @ patch @ cols.transpose(1, 2)                     # (1, 8, 8)
    expected = torch.zeros(1, 8, 8)
    expected[:, 3:7, 0:4] += 0.5 * patch
    expected[:, 3:7, 4:8] += 0.5 * patch
    assert torch.allclose(placed, expected)


def test_the_slot_encoder_says_where_without_the_digits_and_the_generator_draws(data_root):
    from gankit.nn.captions import CaptionsFamily, CaptionsParams, SlotEncoder, SlotGenerator
    info = MNISTCaptions.describe(MNISTCaptionsParams(canvas=32))
    E = SlotEncoder(len(info.vocab), info.content_ids, 4, 6, 2)
    specs = torch.tensor([[0, 3, 0], [0, 5, 0], [4, 1, 2], [4, 7, 9]])  # same places, digits differ
    c = E(spec_tokens(info, specs)).view(4, 2, 11)
    assert torch.equal(c[0, :, 4:], c[1, :, 4:]) and torch.equal(c[2, :, 4:], c[3, :, 4:])
    assert not torch.equal(c[0, :, :4], c[1, :, :4])                 # what: the digit
    assert torch.equal(c[:, 0, :4], E.what.weight[[info.vocab.index(d) for d in "3517"]])
    assert torch.equal(c[:, 1, :4], E.what.weight[[0, 0, info.vocab.index("2"),
                                                   info.vocab.index("9")]])
    assert c[:, :, -1].tolist() == [[1, 0], [1, 0], [1, 1], [1, 1]]   # the k-th digit named
    G = SlotGenerator(3, 4, 6, 2, info.canvas, info.digit, 4)
    x = G(torch.randn(4, 3), c.flatten(1))
    assert x.shape == (4, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ConfigError, match="model.slots needs one-channel captioned canvases"):
        from gankit.data.base import DataInfo
        CaptionsFamily.check(CaptionsParams(slots=2), DataInfo("image", (1, 32, 32)))


def test_slot_builders_refuse_an_embedding_size_they_do_not_make(data_root):
    from gankit.core.roles import ConditionedGeneratorRole, TextEncoderRole
    from gankit.nn.captions import CaptionsParams, build_encoder, build_generator, caption_dim
    info = MNISTCaptions.describe(MNISTCaptionsParams(canvas=32))
    p = CaptionsParams(slots=2, embed_dim=4, text_dim=6)
    assert caption_dim(p) == 22                                      # 2 (4 + 6 + 1)
    for size in (0, 22):                                             # the family's / its own
        build_encoder(p, info, TextEncoderRole(vocab=len(info.vocab), out_dim=size))
        build_generator(p, info, ConditionedGeneratorRole(z_dim=3, cond_dim=size))
    with pytest.raises(ConfigError, match="size 22, but the objective asks for a caption emb"):
        build_encoder(p, info, TextEncoderRole(vocab=len(info.vocab), out_dim=6))
    with pytest.raises(ConfigError, match="asks for a generator condition of size 8"):
        build_generator(p, info, ConditionedGeneratorRole(z_dim=3, cond_dim=8))


def test_the_slot_generator_trains_and_samples_a_caption(tmp_path, data_root):
    cfg = {**TINY, "data": {**TINY["data"], "canvas": 32},
           "model": {**TINY["model"], "slots": 2},
           "objective": {"name": "gan-cls", "caption_loss": 1.0, "g_encoder": True}}
    trainer = Trainer(validate(cfg), None)
    for _ in range(2):
        trainer.train_step()
    assert trainer.pop_scalars()["loss/G_read"] > 0
    inputs = {"z": torch.randn(2, 4), "tokens": INFO.encode(
        "the digit 4 is at the bottom right of the image").repeat(2, 1)}
    x = trainer.objective.generate(inputs)
    assert x.shape == (2, 1, 32, 32) and bool(torch.isfinite(x).all())


def test_slot_norm_standardises_each_slot_over_the_captions_that_name_it():
    from gankit.nn.captions import SlotNorm
    norm = SlotNorm(2, 3)
    where = torch.randn(6, 2, 3)
    flag = torch.tensor([[1.0, 1], [1, 0], [1, 1], [1, 0], [1, 1], [1, 0]])[..., None]
    out = norm(where, flag)
    named = out[:, 1][flag[:, 1, 0] == 1]                              # slot 2: 3 rows
    assert torch.allclose(named.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(named.var(0, unbiased=False), torch.ones(3), atol=1e-3)
    where2 = where.clone()
    where2[flag[:, 1, 0] == 0, 1] = 100.0                              # empty rows: no say
    assert torch.allclose(norm(where2, flag)[:, 1][flag[:, 1, 0] == 1], named, atol=1e-5)
    norm.eval()                                                        # running statistics
    assert norm(where[:1], flag[:1]).shape == (1, 2, 3)


def test_slot_norm_keeps_a_slot_no_caption_names_and_slots_must_cover_the_captions():
    from gankit.nn.captions import CaptionsFamily, CaptionsParams, SlotNorm
    norm = SlotNorm(2, 3)
    flag = torch.tensor([[1.0, 0], [1, 0]])[..., None]                # slot 2 never named
    for _ in range(5):
        norm(torch.randn(2, 2, 3), flag)
    assert torch.equal(norm.running_mean[1], torch.zeros(3))
    assert torch.equal(norm.running_var[1], torch.ones(3))
    assert norm(torch.randn(2, 2, 3, dtype=torch.bfloat16), flag).dtype == torch.bfloat16
    info = MNISTCaptions.describe(MNISTCaptionsParams(canvas=32))
    with pytest.raises(ConfigError, match="model.slots=1 draws fewer digits than the captions"):
        CaptionsFamily.check(CaptionsParams(slots=1), info)
    CaptionsFamily.check(CaptionsParams(slots=1), MNISTCaptions.describe(
        MNISTCaptionsParams(canvas=32, digits="one")))
