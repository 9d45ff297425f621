import torch

from attention.maps import render_token_grid


def test_grid_has_one_labelled_tile_per_token_and_image_first():
    maps = torch.rand(5, 8, 8)
    grid = render_token_grid(maps, ["a", "cat", "on", "a", "mat"], tile=32, columns=3)
    assert grid.shape == (2 * (32 + 16), 3 * 32, 3) and 0 <= grid.min() and grid.max() <= 1
    with_image = render_token_grid(maps, ["a"] * 5, torch.zeros(64, 64, 3), tile=32, columns=3)
    assert with_image.shape == (2 * 48, 3 * 32, 3)
    assert with_image[:32, :32].abs().max() == 0  # first tile is the (black) image itself


def test_hot_spot_lands_where_the_map_peaks():
    m = torch.zeros(1, 4, 4)
    m[0, 0, 3] = 1.0
    grid = render_token_grid(m, ["x"], tile=32, columns=1)
    tile = grid[:32, :32].sum(-1)
    assert tile[:16, 16:].mean() > tile[16:, :16].mean()


def test_word_masks_sum_each_group_scale_to_one_and_resize():
    from attention.maps import word_masks

    maps = torch.zeros(4, 4, 4)
    maps[1, 0, 0] = 2.0
    maps[2, 3, 3] = 1.0
    maps[3, 3, 3] = 1.0
    masks = word_masks(maps, [[1], [2, 3]], (16, 16))
    assert masks.shape == (2, 16, 16) and masks.min() >= 0 and masks.max() <= 1
    assert masks[0, :4, :4].mean() > masks[0, 12:, 12:].mean()
    assert masks[1, 12:, 12:].mean() > masks[1, :4, :4].mean()
    assert torch.allclose(masks.amax(dim=(1, 2)), torch.ones(2), atol=0.05)
    assert word_masks(maps, [], (16, 16)).shape == (1, 16, 16)


def test_joint_maps_take_the_last_third_of_the_blocks_and_the_second_half_of_the_steps():
    from attention.backends.base import JointLayer
    from attention.joint_maps import late_step, map_orders

    demo = [JointLayer("double", i, i) for i in range(2)] + [JointLayer("single", i, 2 + i) for i in range(4)]
    assert map_orders(demo) == {4, 5}
    flux = [JointLayer("double", i, i) for i in range(19)] + [JointLayer("single", i, 19 + i) for i in range(38)]
    assert map_orders(flux) == set(range(38, 57))
    assert map_orders([JointLayer("joint", 0, 0)]) == {0}
    assert [late_step(i, 20) for i in (0, 9, 10, 19)] == [False, False, True, True]
    assert late_step(0, 1)
