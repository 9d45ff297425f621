"""Sentence templates and pix2pix-zero edit-direction math, pinned on small hand-made tensors."""
import pytest
import torch
from safetensors.torch import save_file

from directions.direction import (FORMAT, DirectionFileError, DirectionMismatch, DirectionNotFinite, EditDirection,
                                  apply_direction, compute_direction, load_direction, mean_embedding,
                                  save_direction)
from directions.templates import TEMPLATES, expand_concept, fill, indefinite_article, parse_sentences

D = 4


# ---------------------------------------------------------------- templates

def test_bank_size_and_one_placeholder_each():
    assert len(TEMPLATES) >= 120
    assert len(set(TEMPLATES)) == len(TEMPLATES)
    for t in TEMPLATES:
        assert t.count("{}") == 1, t
        assert t.format("cat").count("cat") == 1


def test_articles():
    assert fill("a photo of a {}", "cat") == "a photo of a cat"
    assert fill("a photo of a {}", "apple") == "a photo of an apple"
    assert fill("A {} at night", "owl") == "An owl at night"
    assert fill("A {} at night", "dog") == "A dog at night"
    assert fill("an {} on a table", "cat") == "a cat on a table"
    assert fill("a photo of a small {}", "apple") == "a photo of a small apple"  # article not at the slot
    assert [indefinite_article(w) for w in ("hour", "unicorn", "umbrella", "European", "Eagle")] == \
        ["an", "a", "an", "a", "an"]
    assert fill("A {} at night", "the moon") == "The moon at night"
    assert fill("a photo of a beautiful {}", "the moon") == "a photo of a beautiful moon"


def test_expand_concept_one_sentence_per_template():
    sentences = expand_concept("apple")
    assert len(sentences) == len(TEMPLATES)
    assert all("apple" in s and "{}" not in s for s in sentences)
    assert "a photo of an apple" in sentences
    assert not any(" a apple" in s or s.startswith("a apple") for s in sentences)
    assert "an apple in a park" in sentences
    with pytest.raises(ValueError):
        expand_concept("  ")


def test_parse_sentences_rules():
    assert parse_sentences("  a cat on a sofa \n\n\ta dog in the snow\n  \n") == \
        ["a cat on a sofa", "a dog in the snow"]
    assert parse_sentences("a golden retriever") == ["a golden retriever"]  # one line with spaces: one sentence
    assert parse_sentences("cat") == expand_concept("cat")  # one word: template expansion
    assert parse_sentences("  cat \n\n") == expand_concept("cat")
    assert parse_sentences("teddy_bear")[0] == "a photo of a teddy bear"
    assert parse_sentences("t-shirt")[0] == "a photo of a t-shirt"
    assert parse_sentences("cat\ndog") == ["cat", "dog"]  # several lines are taken as written
    assert parse_sentences("") == [] and parse_sentences(" \n ") == []


# ---------------------------------------------------------------- direction math

def seq(value_rows):
    """[77, D] tensor whose row i is value_rows(i)."""
    return torch.stack([torch.full((D,), float(value_rows(i))) for i in range(77)])


def test_mean_embedding_streams_batches_in_fp32():
    a = torch.stack([seq(lambda i: i), seq(lambda i: 3 * i)])  # mean 2i
    b = seq(lambda i: 5 * i)[None]  # one sentence; overall mean (i + 3i + 5i) / 3 = 3i
    mean = mean_embedding([a, b])
    assert mean.dtype == torch.float32 and mean.shape == (77, D)
    assert torch.equal(mean, seq(lambda i: 3 * i))
    # fp16 inputs: a sum of 4000 ones overflows nothing, the mean is exact
    ones = (torch.ones(1000, 77, D, dtype=torch.float16) for _ in range(4))
    assert torch.equal(mean_embedding(ones), torch.ones(77, D))
    assert torch.equal(mean_embedding([torch.tensor([[1.0, 2.0], [3.0, 6.0]])]), torch.tensor([2.0, 4.0]))
    with pytest.raises(ValueError, match="no embeddings"):
        mean_embedding([])
    with pytest.raises(ValueError, match="does not match"):
        mean_embedding([torch.zeros(1, 77, D), torch.zeros(1, 77, D + 1)])


def make_direction(pooled=True, encoder="sd1-clip_l-4"):
    src, tgt = seq(lambda i: 1.0), seq(lambda i: i / 10)
    src_p, tgt_p = (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 5.0])) if pooled else (None, None)
    return compute_direction(src, tgt, src_p, tgt_p, encoder, D, "cat", "dog", 140, 139)


def test_compute_direction_is_target_minus_source():
    d = make_direction()
    assert torch.allclose(d.embeddings, seq(lambda i: i / 10 - 1.0))
    assert torch.equal(d.pooled, torch.tensor([1.0, 0.0, 2.0]))
    assert (d.encoder, d.width, d.source, d.target, d.source_count, d.target_count) == \
        ("sd1-clip_l-4", D, "cat", "dog", 140, 139)
    assert make_direction(pooled=False).pooled is None
    with pytest.raises(ValueError):
        compute_direction(seq(lambda i: 0), seq(lambda i: 0), torch.zeros(3), None, "e", D, "a", "b", 1, 1)
    with pytest.raises(ValueError):
        compute_direction(torch.zeros(77, D), torch.zeros(77, D), None, None, "e", D + 1, "a", "b", 1, 1)


def same_encoder_cond(d, b=2, t=154):
    """A conditioning as the direction's encoder gives it: every chunk starts with the encoder's start output."""
    cond = torch.randn(b, t, D)
    cond[:, ::77] = d.fingerprint
    return cond


def test_apply_adds_strength_times_direction_to_every_chunk():
    d = make_direction()
    cond = same_encoder_cond(d)
    pooled = torch.randn(2, 3)
    out, out_pooled = apply_direction(cond, pooled, d, 0.5)
    assert out.shape == cond.shape
    assert torch.allclose(out[:, :77], cond[:, :77] + 0.5 * d.embeddings)
    assert torch.allclose(out[:, 77:], cond[:, 77:] + 0.5 * d.embeddings)
    assert torch.allclose(out_pooled, pooled + 0.5 * torch.tensor([1.0, 0.0, 2.0]))
    same, same_pooled = apply_direction(cond, pooled, d, 0.0)
    assert torch.equal(same, cond) and torch.equal(same_pooled, pooled)
    # dtype kept; no pooled in -> none out; a direction without pooled leaves pooled alone
    half, none = apply_direction(cond.half(), None, d, 1.0)
    assert half.dtype == torch.float16 and none is None
    _, kept = apply_direction(cond, pooled, make_direction(pooled=False), 1.0)
    assert kept is pooled


def test_apply_mismatch_errors_name_both_encoders_and_the_fix():
    d = make_direction(encoder="sd1-clip_l-4")
    with pytest.raises(DirectionMismatch) as err:
        apply_direction(torch.zeros(1, 77, 8), None, d, 1.0, encoder="sdxl-clip_l+clip_g-8")
    msg = str(err.value)
    assert "sd1-clip_l-4" in msg and "sdxl-clip_l+clip_g-8" in msg and "width 4" in msg and "width 8" in msg
    assert "Recompute the direction" in msg and "this workflow's CLIP" in msg
    assert isinstance(err.value, ValueError)
    with pytest.raises(DirectionMismatch, match="width 8"):  # width alone is enough to refuse
        apply_direction(torch.zeros(1, 77, 8), None, d, 1.0)
    with pytest.raises(DirectionMismatch, match="other-enc"):  # same width, other encoder
        apply_direction(torch.zeros(1, 77, D), None, d, 1.0, encoder="other-enc-4")
    with pytest.raises(DirectionMismatch, match="pooled"):
        apply_direction(same_encoder_cond(d, 1, 77), torch.zeros(1, 5), d, 1.0)
    with pytest.raises(ValueError, match="multiple of 77"):
        apply_direction(torch.zeros(1, 80, D), None, d, 1.0)


# ---------------------------------------------------------------- files

def test_save_load_round_trip(tmp_path):
    for d in (make_direction(), make_direction(pooled=False)):
        path = tmp_path / "sub" / f"{d.pooled is None}.safetensors"
        save_direction(path, d)
        back = load_direction(path)
        assert isinstance(back, EditDirection)
        assert torch.equal(back.embeddings, d.embeddings)
        assert (back.pooled is None) == (d.pooled is None)
        if d.pooled is not None:
            assert torch.equal(back.pooled, d.pooled)
        for field in ("encoder", "width", "source", "target", "source_count", "target_count"):
            assert getattr(back, field) == getattr(d, field)
    from safetensors import safe_open
    with safe_open(str(tmp_path / "sub" / "False.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == FORMAT == "attn-edit-direction/1"
    assert meta["encoder"] == "sd1-clip_l-4" and meta["width"] == "4" and meta["source_count"] == "140"


def test_load_refuses_foreign_files(tmp_path):
    foreign = tmp_path / "my_embedding.safetensors"
    save_file({"emb_params": torch.zeros(2, D)}, str(foreign))
    with pytest.raises(DirectionFileError) as err:
        load_direction(foreign)
    assert str(foreign) in str(err.value) and FORMAT in str(err.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(DirectionFileError, match="junk.safetensors"):
        load_direction(junk)
    newer = tmp_path / "newer.safetensors"
    save_file({"embeddings": torch.zeros(77, D)}, str(newer), metadata={"format": "attn-edit-direction/2"})
    with pytest.raises(DirectionFileError, match="attn-edit-direction/2"):
        load_direction(newer)
    with pytest.raises(FileNotFoundError):
        load_direction(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_directions_are_refused_when_loaded_and_when_applied(tmp_path, bad):
    for part in ("embeddings", "pooled"):
        d = make_direction()
        getattr(d, part)[1] = bad
        with pytest.raises(DirectionNotFinite, match="NaN or Inf") as err:
            apply_direction(torch.zeros(1, 77, D), torch.zeros(1, 3), d, 1.0)
        assert "AttnEdit_EditDirection" in str(err.value)
        path = tmp_path / f"{part}.safetensors"
        save_direction(path, d)
        with pytest.raises(DirectionFileError, match="NaN or Inf") as err:
            load_direction(path)
        assert str(path) in str(err.value)


def test_a_conditioning_from_another_encoder_of_the_same_kind_is_refused(tmp_path):
    d = make_direction()
    assert torch.equal(d.fingerprint, torch.ones(D))  # the source mean's start token
    other = same_encoder_cond(d)
    other[:, ::77] = d.fingerprint * 1.3  # same class and width, other weights
    with pytest.raises(DirectionMismatch, match="start token differ by 30%"):
        apply_direction(other, None, d, 1.0)
    # fp16 rounding of the same encoder's output is not a mismatch
    apply_direction(same_encoder_cond(d).half(), None, d, 1.0)
    # the fingerprint travels with the file; a file without one (saved before) is applied unchecked
    save_direction(tmp_path / "d.safetensors", d)
    loaded = load_direction(tmp_path / "d.safetensors")
    assert torch.equal(loaded.fingerprint, d.fingerprint)
    with pytest.raises(DirectionMismatch):
        apply_direction(other, None, loaded, 1.0)
    loaded.fingerprint = None
    apply_direction(other, None, loaded, 1.0)


def test_other_encoders_line_up_by_position_or_by_mean_token():
    from directions.direction import DirectionMismatch

    src, tgt = torch.zeros(154, D), torch.arange(154.0)[:, None].expand(154, D)
    d = compute_direction(src, tgt, None, None, "SD3ClipModel-4", D, "a", "b", 1, 1, fingerprint=False)
    cond = torch.randn(1, 154, D)
    out, _ = apply_direction(cond, None, d, 2.0)
    assert d.fingerprint is None and torch.allclose(out, cond + 2.0 * tgt)
    with pytest.raises(DirectionMismatch, match="pads sentences to 154 tokens"):
        apply_direction(torch.randn(1, 160, D), None, d, 1.0)
    mean = compute_direction(torch.zeros(1, D), torch.ones(1, D), None, None, "QwenImageTEModel_-4", D, "a", "b",
                             1, 1, alignment="mean", fingerprint=False)
    cond = torch.randn(2, 13, D)
    out, _ = apply_direction(cond, None, mean, 0.5)
    assert torch.allclose(out, cond + 0.5)
    with pytest.raises(ValueError):
        compute_direction(torch.zeros(3, D), torch.ones(3, D), None, None, "e", D, "a", "b", 1, 1, alignment="mean")


def test_alignment_survives_save_and_load(tmp_path):
    mean = compute_direction(torch.zeros(1, D), torch.ones(1, D), None, None, "QwenImageTEModel_-4", D, "a", "b",
                             1, 1, alignment="mean", fingerprint=False)
    save_direction(tmp_path / "m.safetensors", mean)
    back = load_direction(tmp_path / "m.safetensors")
    assert back.alignment == "mean" and torch.equal(back.embeddings, mean.embeddings) and back.fingerprint is None
