"""Prompt-to-Prompt on joint attention (attention/joint_edits.py) against explicit softmax maps."""
import torch

from attention.edits import cross_coefficients, row_kinds, EditRow
from attention.joint_edits import mix_joint_attention, output_maps, splice_attention, text_maps

H, D, T, I = 2, 8, 6, 5


def attend(q, k, v):
    """ComfyUI's skip_reshape attention contract: [B, H, L, D] in, [B, Lq, H·D] out."""
    p = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, -1)
    out = p @ v
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def row(mapper, align=None, start=0.0, end=1.0, reweight=None):
    return EditRow(mapper, torch.ones(T) if align is None else align, torch.full((T,), start), torch.full((T,), end),
                   torch.ones(T) if reweight is None else reweight)


def joint_logits(q, k):
    return q @ k.transpose(-1, -2) * D ** -0.5


def test_splice_equals_explicit_joint_softmax_with_source_text_logits():
    q0, k0, q1, k1, v = (rand(1, H, T + I, D, seed=s) for s in range(5))
    text = slice(0, T)
    out = splice_attention(attend, q0[:, :, T:], k0, q1[:, :, T:], k1, v, text)
    logits = torch.cat([joint_logits(q0[:, :, T:], k0[:, :, :T]), joint_logits(q1[:, :, T:], k1[:, :, T:])], -1)
    expected = (torch.softmax(logits, -1) @ v).transpose(1, 2).reshape(1, I, H * D)
    torch.testing.assert_close(out, expected)


def test_replace_inside_both_windows_is_the_source_map_on_mapped_values():
    q, k, v = rand(2, H, T + I, D, seed=1), rand(2, H, T + I, D, seed=2), rand(2, H, T + I, D, seed=3)
    mapper = torch.eye(T)[torch.tensor([0, 2, 1, 3, 4, 5])]  # tokens 1 and 2 swap places
    a, b = cross_coefficients([row(mapper)], 0, 10)
    out = mix_joint_attention(q, k, v, slice(0, T), attend, [0], mapper[None], a, b, row_kinds(a, b), True)
    p0 = torch.softmax(joint_logits(q[:1], k[:1]), -1)[:, :, T:]  # source map, image queries
    values = v[1:].clone()
    values[:, :, :T] = torch.einsum("st,bhtd->bhsd", mapper.double(), v[1:, :, :T])
    expected_image = (p0 @ values).transpose(1, 2).reshape(1, I, H * D)
    torch.testing.assert_close(out[1, T:], expected_image[0])
    torch.testing.assert_close(out[0], attend(q, k, v)[0])  # source row untouched
    torch.testing.assert_close(out[1, :T], attend(q, k, v)[1, :T])  # edited row's text queries: its own


def test_refine_adds_the_rows_own_map_on_unaligned_tokens():
    q, k, v = rand(2, H, T + I, D, seed=4), rand(2, H, T + I, D, seed=5), rand(2, H, T + I, D, seed=6)
    align = torch.tensor([1.0, 1, 0, 1, 1, 1])
    mapper = torch.eye(T)
    a, b = cross_coefficients([row(mapper, align)], 0, 10)
    out = mix_joint_attention(q, k, v, slice(0, T), attend, [0], mapper[None], a, b, row_kinds(a, b), False)
    src = torch.cat([joint_logits(q[:1, :, T:], k[:1, :, :T]), joint_logits(q[1:, :, T:], k[1:, :, T:])], -1)
    own = torch.softmax(joint_logits(q[1:, :, T:], k[1:]), -1)
    values = v[1:].clone()
    values[:, :, :T] *= align[:, None]
    expected = torch.softmax(src, -1) @ values
    own_values = torch.zeros_like(v[1:])
    own_values[:, :, :T] = v[1:, :, :T] * (1 - align)[:, None]
    expected = expected + own @ own_values
    torch.testing.assert_close(out[1, T:], expected.transpose(1, 2).reshape(I, H * D))


def test_outside_the_windows_and_identical_rows_are_plain():
    q, k, v = rand(3, H, T + I, D, seed=7), rand(3, H, T + I, D, seed=8), rand(3, H, T + I, D, seed=9)
    mapper = torch.eye(T)
    a, b = cross_coefficients([row(mapper, end=0.0)], 3, 10)
    out = mix_joint_attention(q, k, v, slice(0, T), attend, [1], mapper[None], a, b, row_kinds(a, b), False)
    torch.testing.assert_close(out, attend(q, k, v))
    same = torch.cat([q[:1], q[:1]]), torch.cat([k[:1], k[:1]]), torch.cat([v[:1], v[:1]])
    a, b = cross_coefficients([row(mapper)], 0, 10)
    out = mix_joint_attention(*same, slice(0, T), attend, [0], mapper[None], a, b, row_kinds(a, b), False)
    torch.testing.assert_close(out[1], out[0])


def test_text_maps_are_softmax_over_the_text_keys():
    q, k = rand(2, H, T + I, D, seed=10), rand(2, H, T + I, D, seed=11)
    maps = text_maps(q, k, slice(0, T), slice(T, T + I), [1])
    assert maps.shape == (1, I, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(1, I, dtype=maps.dtype))
    expected = torch.softmax(joint_logits(q[1:, :, T:], k[1:, :, :T]).float(), -1).mean(1)
    torch.testing.assert_close(maps, expected)


def test_output_maps_put_an_image_token_on_the_word_whose_output_it_shares():
    """ConceptAttention's map: image token i's output equal (up to scale) to text token t's output sends i's mass
    to t; each image token's map is a distribution over the text tokens (or over the chosen ones only)."""
    g = torch.Generator().manual_seed(0)
    text_out = torch.randn(1, 4, 16, generator=g) * 3
    image_out = torch.randn(1, 6, 16, generator=g) * 0.1
    image_out[0, 2] = text_out[0, 1]
    image_out[0, 5] = text_out[0, 3]
    out = torch.cat([text_out, image_out], dim=1)
    maps = output_maps(out, slice(0, 4), slice(4, 10), [0])
    assert maps.shape == (1, 6, 4)
    assert torch.allclose(maps.sum(-1), torch.ones(1, 6))
    assert maps[0, 2].argmax() == 1 and maps[0, 5].argmax() == 3
    only = output_maps(out, slice(0, 4), slice(4, 10), [0], tokens=[0, 1, 2])
    assert torch.all(only[..., 3] == 0) and torch.allclose(only.sum(-1), torch.ones(1, 6))
    assert only[0, 2].argmax() == 1


def test_key_and_text_value_scales_act_on_the_reweighted_word_only():
    q, k, v = rand(2, H, T + I, D, seed=10), rand(2, H, T + I, D, seed=11), rand(2, H, T + I, D, seed=12)
    mapper = torch.eye(T)
    a, b = cross_coefficients([row(mapper)], 0, 10)
    kinds = row_kinds(a, b)
    plain = mix_joint_attention(q, k, v, slice(0, T), attend, [0], mapper[None], a, b, kinds, False)
    ones = torch.ones(1, T)
    same = mix_joint_attention(q, k, v, slice(0, T), attend, [0], mapper[None], a, b, kinds, False, ones, ones)
    torch.testing.assert_close(same, plain)  # a factor of 1 is the identity
    scale = ones.clone()
    scale[0, 2] = 3.0
    logits = mix_joint_attention(q, k, v, slice(0, T), attend, [0], mapper[None], a, b, kinds, False, key_scale=scale)
    k_scaled = k.clone()
    k_scaled[0, :, 2] *= 3.0  # the source's key of word 2: its logit for the row's image queries, × 3
    src = torch.cat([joint_logits(q[:1, :, T:], k_scaled[:1, :, :T]), joint_logits(q[1:, :, T:], k[1:, :, T:])], -1)
    expected = (torch.softmax(src, -1) @ v[1:]).transpose(1, 2).reshape(I, H * D)
    torch.testing.assert_close(logits[1, T:], expected)
    text = mix_joint_attention(q, k, v, slice(0, T), attend, [0], mapper[None], a, b, kinds, False,
                               text_value_scale=scale)
    v_scaled = v.clone()
    v_scaled[1, :, 2] *= 3.0
    torch.testing.assert_close(text[1, :T], attend(q[1:, :, :T], k[1:], v_scaled[1:])[0])
    torch.testing.assert_close(text[1, T:], plain[1, T:])
