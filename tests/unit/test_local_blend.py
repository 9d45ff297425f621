import torch

from attention.local_blend import apply_blend, blend_mask, word_maps


def test_mask_is_union_of_source_and_edit_regions_and_threshold_matters():
    acc = torch.zeros(2, 8, 8)
    acc[0, 1, 1] = 1.0  # source word attends top-left
    acc[1, 6, 6] = 2.0  # edit word attends bottom-right
    mask = blend_mask(acc, 0.3, (16, 16))
    assert mask.shape == (1, 1, 16, 16)
    # max-pool 3x3 grows each point to 3x3 cells, nearest resize doubles: 6x6 latent pixels each
    assert mask[0, 0, 2, 2] == 1 and mask[0, 0, 12, 12] == 1 and mask[0, 0, 8, 2] == 0
    assert mask.sum() == 2 * 36
    everything = blend_mask(acc + 0.5, 0.0, (16, 16))
    assert everything.all()


def test_apply_blend_keeps_source_outside_mask_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 16, 16, generator=g)
    acc = torch.rand(3, 8, 8, generator=g)
    mask = blend_mask(acc, 0.7, (16, 16))
    out = apply_blend(x, mask)
    assert torch.equal(out[0], x[0])
    outside = (mask[:, 0] == 0)
    for i in (1, 2):
        assert torch.equal(out[i][:, outside[i - 1]], x[0][:, outside[i - 1]])
        assert torch.equal(out[i][:, ~outside[i - 1]], x[i][:, ~outside[i - 1]])


def test_word_maps_sums_selected_tokens():
    maps = torch.rand(2, 4, 77)
    w = torch.zeros(2, 77)
    w[0, 3] = 1
    w[1, [3, 4]] = 1
    got = word_maps(maps, w)
    assert torch.allclose(got[0], maps[0, :, 3]) and torch.allclose(got[1], maps[1, :, 3] + maps[1, :, 4])


def test_soft_mask_blends_linearly_and_is_exact_at_both_ends():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=g)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0
    mask[..., 4:6] = 0.25
    out = apply_blend(x, mask)
    assert torch.equal(out[1][..., :4], x[1][..., :4])
    assert torch.equal(out[1][..., 6:], x[0][..., 6:])
    assert torch.allclose(out[1][..., 4:6], x[0][..., 4:6] + 0.25 * (x[1][..., 4:6] - x[0][..., 4:6]))


def test_user_region_resizes_like_comfyui_and_gives_each_edit_its_mask():
    from attention.local_blend import user_region

    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1.0
    one = user_region(mask, 2, (8, 8))
    assert one.shape == (2, 1, 8, 8) and torch.equal(one[0], one[1])
    assert one[..., :4].min() == 1 and one[..., 4:].max() == 0
    two = user_region(torch.stack([mask[0], 1 - mask[0]]), 2, (8, 8))
    assert torch.equal(two[1], 1 - two[0])
    video = user_region(mask, 1, (3, 8, 8))  # a frame axis: the same mask on every frame
    assert video.shape == (1, 1, 3, 8, 8) and torch.equal(video[0, 0, 2], one[0, 0])


def test_without_pooling_the_mask_is_the_thresholded_map():
    acc = torch.zeros(2, 8, 8)
    acc[0, 1, 1] = 1.0
    acc[1, 6, 6] = 1.0
    assert blend_mask(acc, 0.3, (8, 8), pool=1).sum() == 2  # just the two peaks
    assert blend_mask(acc, 0.3, (8, 8), pool=3).sum() == 18
