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
