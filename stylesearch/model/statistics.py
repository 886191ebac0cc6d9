"""Hand-made style statistics of an image: palette, stroke and texture, no learned weights.

Why: on styles never seen in training these beat every CNN we trained on this corpus (the
model card's "Version 2" section), because they measure what a style is made of (how many
colours, how saturated, how thick and dark the lines, which edge directions and local
textures) and not what is drawn. Everything is computed on the foreground (pixels that are not
paper-white) so margins and framing do not count. Histograms are square-rooted (Hellinger) so
Euclidean distance on them behaves. The blocks, in output order:

  hsv        12 hue x 4 saturation x 4 value histogram                        192
  gradients  8 edge-orientation bins (magnitude-weighted), 10 log-magnitude bins  18
  lbp        rotation-invariant uniform local binary patterns                   10
  lines      dark-ink share, edge share, 6 stroke half-width bins                8
  palette    colours covering 50/80/95 %, saturation/value mean and std,
             concentration of the 8 main colours                                 8
  colour     colourfulness (Hasler & Suesstrunk)                                 1
  edges      6 hue x 2 saturation x 2 value histogram of edge pixels (the
             colour of outlines and shading boundaries)                         24
  tones      8-bin saturation and 8-bin value histograms                        16
  ink        share and 6 stroke widths of pixels 60 levels darker than the
             drawing's median grey (pencil and coloured lines, not only black)   7
  coarse     gradients and lbp again at half resolution (texture one octave up) 28
  outline    the silhouette's rim (drawn pixels touching paper): its share, 8-bin
             value and 4-bin saturation histograms, how much darker than the
             inside it is (outlined or not, and in what tone)                   14
  turns      how much the edge direction turns between neighbouring pixels,
             0-4 steps of 22.5 degrees (straight strokes vs curves and noise)    5
  detail     colours (of 64) per 8 x 8 block: 1, 2, 3-4, 5-8, 9+ (flat fills
             vs shading, texture and anti-aliasing)                              5
  satlbp     local binary patterns of saturation (colour texture)              10
  pairs      which tones meet: unordered pairs of 4 value x 2 saturation levels
             over neighbouring pixels that differ                              28
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Bump when any statistic changes: a fused map is only valid for the layout it was fitted on
# (1: the 237 statistics of models 2 and 3 of 2026-11-27; 2: 312 statistics, before the
# pixels were put back on the 8-bit grid, model 4; 3: these 374 with the rim's contrast set
# to the mean brightness when there is no rim, as first committed; 4: edge directions by
# atan2 and divisions by constants, which gave other bins on a GPU (model 5); 5: these).
LAYOUT = 5
BLOCKS = {"hsv": 192, "gradients": 18, "lbp": 10, "lines": 8, "palette": 8, "colour": 1, "edges": 24, "tones": 16,
          "ink": 7, "coarse": 28, "outline": 14, "turns": 5, "detail": 5, "satlbp": 10, "pairs": 28}
_PAPER = 245 / 255  # brighter than this in every channel = background
_TAN_22_5, _TAN_67_5 = math.tan(math.pi / 8), math.tan(3 * math.pi / 8)
# edge strength bins: log1p(magnitude) in tenths of 7.5, as thresholds (exact comparisons)
_STRENGTHS = torch.tensor([math.expm1(0.75 * k) for k in range(1, 10)])
_LBP_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _histogram(codes: torch.Tensor, weights: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-image weighted histogram: codes, weights N x ... -> N x bins, rows summing to 1."""
    flat = codes.reshape(len(codes), -1).long()
    hist = torch.zeros(len(codes), bins, dtype=weights.dtype, device=weights.device)
    hist.scatter_add_(1, flat, weights.reshape(len(codes), -1))
    return hist / hist.sum(1, keepdim=True).clamp_min(1e-12)


def _masked_mean_std(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    count = mask.sum((1, 2)).clamp_min(1)
    mean = (values * mask).sum((1, 2)) / count
    var = (((values - mean[:, None, None]) ** 2) * mask).sum((1, 2)) / count
    return mean, var.sqrt()


def _hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB in [0, 1] -> hue in [0, 1), saturation, value (N x H x W each)."""
    top = rgb.amax(1)
    chroma = top - rgb.amin(1)
    safe = chroma.clamp_min(1e-8)
    r, g, b = rgb.unbind(1)
    hue = torch.where(top == r, ((g - b) / safe) % 6, torch.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(chroma > 0, hue * (1 / 6), torch.zeros_like(hue))
    saturation = torch.where(top > 0, chroma / top.clamp_min(1e-8), torch.zeros_like(top))
    return hue, saturation, top


def _foreground(rgb: torch.Tensor) -> torch.Tensor:
    """1 where something is drawn (not paper-white); the whole image when (almost) nothing is."""
    fg = (rgb.amin(1) < _PAPER).float()
    fg[fg.sum((1, 2)) < 20] = 1.0
    return fg


def _grey(rgb: torch.Tensor) -> torch.Tensor:
    """Luma on a 0-255 scale (ITU-R 601, as Pillow's "L")."""
    return (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]) * 255


def _gradient(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives (N x 2 x H x W) and their magnitude, as separable slices: a 1-channel
    conv2d costs ~18x more on CPU."""
    padded = F.pad(grey[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    across = padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]  # smoothed down the columns
    down = padded[:, :, :-2] + 2 * padded[:, :, 1:-1] + padded[:, :, 2:]  # smoothed along the rows
    grad = torch.stack([across[:, :, 2:] - across[:, :, :-2], down[:, 2:] - down[:, :-2]], 1)
    return grad, grad.square().sum(1).sqrt()


def _directions(grad: torch.Tensor) -> torch.Tensor:
    """Edge orientation of every pixel in 8 bins of 22.5 degrees over 0..180 (uint8), each
    bin closed at its lower end. By comparisons of the two derivatives, not atan2: drawings
    are full of exact horizontals, verticals and diagonals, which sit on bin edges, and
    atan2's last bit differs between CPU and GPU libraries."""
    gx, gy = grad[:, 0], grad[:, 1]
    ax, ay = gx.abs(), gy.abs()
    lo, hi = _TAN_22_5 * ax, _TAN_67_5 * ax
    rising = ((gx > 0) == (gy > 0)) & (gx != 0) | (gy == 0)  # 0..90 degrees; else 90..180, counted down from 180
    up = (ay >= lo).to(torch.uint8) + (ay >= ax) + (ay >= hi)  # 22.5, 45, 67.5 degrees reached
    down = (ay > lo).to(torch.uint8) + (ay > ax) + (ay > hi)  # passed, going down from 180
    return torch.where(rising, up, 7 - down) * (ax + ay > 0)  # no edge: bin 0


def _stroke_widths(ink: torch.Tensor) -> torch.Tensor:
    """Histogram of stroke half-widths (1..6 px, chessboard distance) on the ridges of `ink`."""
    eroded = ink > 0
    depth = eroded.to(torch.uint8)
    for _ in range(6):  # 3 x 3 erosion, separable; outside the image counts as ink
        eroded = _neighbourhood(eroded, torch.logical_and, True)
        depth += eroded
    ridge = (ink > 0) & (_neighbourhood(depth, torch.maximum, 0) == depth)
    return _histogram((depth.float() - 1).clamp(0, 5), ridge.float(), 6)


def _neighbourhood(values: torch.Tensor, combine, outside) -> torch.Tensor:
    """`combine` over each pixel's 3 x 3 neighbourhood (N x H x W), `outside` beyond the edges."""
    padded = F.pad(values[:, None].to(torch.uint8), (1, 1, 1, 1), value=int(outside))[:, 0].to(values.dtype)
    rows = combine(combine(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return combine(combine(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


def _neighbours(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pixel and its right-hand neighbour, then every pixel and the one below: N x M each."""
    return (torch.cat([values[:, :, 1:].flatten(1), values[:, 1:].flatten(1)], 1),
            torch.cat([values[:, :, :-1].flatten(1), values[:, :-1].flatten(1)], 1))


def _bins(values: torch.Tensor, count: int) -> torch.Tensor:
    """Bin numbers of values in [0, 1] as uint8 (codes built from them must stay below 256):
    a byte per pixel keeps the neighbour comparisons below cheap."""
    return (values * count).clamp_(0, count - 1).to(torch.uint8)


class StyleStatistics(nn.Module):
    """Normalised image batch (N x 3 x H x W, as the encoder gets it) -> N x 374 statistics.

    Always computed in float32 (bins and thresholds must not move under bf16); returned in
    the input's dtype. Not differentiable and not trained: a fitted linear head weighs them.
    """

    features = sum(BLOCKS.values())

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        super().__init__()
        # plain numbers, not buffers: nothing here is saved, and casting the model to bf16
        # must not round them
        self.mean, self.std = tuple(mean), tuple(std)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def column(values) -> torch.Tensor:
            return torch.tensor(values, device=x.device).view(1, 3, 1, 1)

        # back on the 8-bit grid the pixels came from: the normalisation round trip leaves float
        # noise that gives black pixels a random hue and saturation and moves levels across bins
        levels = ((x.float().contiguous() * column(self.std) + column(self.mean)) * 255).round_().clamp_(0, 255)
        # multiplications, not divisions: a GPU divides by a constant through its reciprocal,
        # and the last bit decides bins for the exact hues and levels drawings are full of
        pixels, rgb = levels.to(torch.uint8), levels * (1 / 255)
        fg = _foreground(rgb)
        grey = _grey(rgb)
        grad, magnitude = _gradient(grey)
        directions = _directions(grad)  # shared by the orientation histogram and the turns
        hue, saturation, value = _hsv(rgb)
        half = F.avg_pool2d(levels, 2) * (1 / 255)  # sums of whole levels: exact in any order
        half_fg = F.max_pool2d(fg[:, None], 2)[:, 0]
        half_grey = _grey(half)
        half_grad, half_magnitude = _gradient(half_grey)
        blocks = [
            self._colour_histogram(hue, saturation, value, fg),
            self._gradients(directions, magnitude, fg),
            self._lbp(grey, fg),
            self._lines(grey, magnitude, fg),
            self._palette(pixels, saturation, value, fg),
            self._colourfulness(rgb, fg),
            self._edge_colours(hue, saturation, value, magnitude, fg),
            self._tones(saturation, value, fg),
            self._relative_ink(grey, fg),
            self._gradients(_directions(half_grad), half_magnitude, half_fg),
            self._lbp(half_grey, half_fg),
            self._outline(saturation, value, fg),
            self._turns(directions, magnitude, fg),
            self._detail(pixels, fg),
            self._lbp(saturation * 255, fg),
            self._pairs(saturation, value, fg),
        ]
        return torch.cat(blocks, 1).to(x.dtype)

    @staticmethod
    def _colour_histogram(hue, saturation, value, fg) -> torch.Tensor:
        codes = (_bins(hue, 12) * 4 + _bins(saturation, 4)) * 4 + _bins(value, 4)
        return _histogram(codes, fg + 1e-3, 192).sqrt()

    @staticmethod
    def _gradients(directions, magnitude, fg) -> torch.Tensor:
        orientation = _histogram(directions, magnitude, 8)
        strength = _histogram(torch.bucketize(magnitude, _STRENGTHS.to(magnitude.device), right=True), fg, 10)
        return torch.cat([orientation.sqrt(), strength.sqrt()], 1)

    @staticmethod
    def _lbp(grey, fg) -> torch.Tensor:
        height, width = grey.shape[1:]
        centre = grey[:, 1:-1, 1:-1] + 4
        bits = [grey[:, 1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx] >= centre for dy, dx in _LBP_OFFSETS]
        ones = sum(b.to(torch.uint8) for b in bits)
        transitions = sum((a ^ b).to(torch.uint8) for a, b in zip(bits, bits[1:] + bits[:1], strict=True))
        pattern = torch.where(transitions <= 2, ones, 9)
        return _histogram(pattern, fg[:, 1:-1, 1:-1], 10).sqrt()

    @staticmethod
    def _lines(grey, magnitude, fg) -> torch.Tensor:
        """Ink share, edge share and stroke widths of dark (< 80 of 255) strokes."""
        count = fg.sum((1, 2))
        dark = (grey < 80).float()
        shares = torch.stack([(dark * fg).sum((1, 2)) / count, ((magnitude > 100).float() * fg).sum((1, 2)) / count], 1)
        return torch.cat([shares, _stroke_widths(dark).sqrt()], 1)

    @staticmethod
    def _relative_ink(grey, fg) -> torch.Tensor:
        """The same for strokes 60 levels darker than the drawing's median: pencil, sepia or
        coloured lines that a fixed black threshold misses."""
        median = grey.masked_fill(fg == 0, float("nan")).flatten(1).nanmedian(1).values
        ink = (grey < median[:, None, None] - 60).float()
        share = (ink * fg).sum((1, 2)) / fg.sum((1, 2))
        return torch.cat([share[:, None], _stroke_widths(ink).sqrt()], 1)

    @staticmethod
    def _edge_colours(hue, saturation, value, magnitude, fg) -> torch.Tensor:
        codes = (_bins(hue, 6) * 2 + _bins(saturation, 2)) * 2 + _bins(value, 2)
        return _histogram(codes, (magnitude > 100).float() * fg + 1e-4, 24).sqrt()

    @staticmethod
    def _tones(saturation, value, fg) -> torch.Tensor:
        return torch.cat([_histogram(_bins(saturation, 8), fg, 8).sqrt(), _histogram(_bins(value, 8), fg, 8).sqrt()], 1)

    @staticmethod
    def _palette(pixels, saturation, value, fg) -> torch.Tensor:
        levels = pixels >> 5  # 8 levels per channel (uint8 shifts are ~15x cheaper than float floors)
        codes = (levels[:, 0].long() * 8 + levels[:, 1]) * 8 + levels[:, 2]
        shares = _histogram(codes, fg, 512).sort(1, descending=True).values
        covered = shares.cumsum(1)
        counts = [((covered < t).sum(1) + 1).float().log() / math.log(512) for t in (0.5, 0.8, 0.95)]
        s_mean, s_std = _masked_mean_std(saturation, fg)
        v_mean, v_std = _masked_mean_std(value, fg)
        concentration = shares[:, :8].sqrt().sum(1) / 8
        return torch.stack([*counts, s_mean, s_std, v_mean, v_std, concentration], 1)

    @staticmethod
    def _colourfulness(rgb, fg) -> torch.Tensor:
        r, g, b = (rgb * 255).unbind(1)
        rg_mean, rg_std = _masked_mean_std(r - g, fg)
        yb_mean, yb_std = _masked_mean_std(0.5 * (r + g) - b, fg)
        return ((torch.hypot(rg_std, yb_std) + 0.3 * torch.hypot(rg_mean, yb_mean)) / 100)[:, None]

    @staticmethod
    def _outline(saturation, value, fg) -> torch.Tensor:
        inside = _neighbourhood(fg > 0, torch.logical_and, True).float()  # the image's edge is not a rim
        rim, interior = fg * (1 - inside), fg * inside
        rim_size, interior_size = rim.sum((1, 2)), interior.sum((1, 2))
        share = rim_size / fg.sum((1, 2))
        contrast = (value * interior).sum((1, 2)) / interior_size.clamp_min(1) - (value * rim).sum((1, 2)) / rim_size.clamp_min(1)
        # no rim (a full-bleed picture) or nothing inside it: no outline to compare, not the mean brightness
        contrast = contrast * ((rim_size >= 4) & (interior_size >= 4))
        tones = [_histogram(_bins(value, 8), rim + 1e-4, 8).sqrt(), _histogram(_bins(saturation, 4), rim + 1e-4, 4).sqrt()]
        return torch.cat([share[:, None], *tones, contrast[:, None]], 1)

    @staticmethod
    def _turns(directions, magnitude, fg) -> torch.Tensor:
        here, there = _neighbours(directions)
        strength_here, strength_there = _neighbours(magnitude * fg)
        step = (here - there) & 7  # uint8 wraps modulo 256, a multiple of 8: the step modulo 8
        turn = torch.minimum(step, 8 - step)  # orientations wrap at 180 degrees
        return _histogram(turn, torch.minimum(strength_here, strength_there) + 1e-6, 5).sqrt()

    @staticmethod
    def _detail(pixels, fg) -> torch.Tensor:
        levels = pixels >> 6  # 4 levels per channel: 64 colours
        codes = (levels[:, 0] * 16 + levels[:, 1] * 4 + levels[:, 2]).to(torch.int16)
        n, height, width = codes.shape
        rows, cols = height // 8, width // 8
        blocks = codes[:, : rows * 8, : cols * 8].reshape(n, rows, 8, cols, 8).permute(0, 1, 3, 2, 4).reshape(n, -1, 64)
        ordered = blocks.sort(2).values
        colours = (ordered[:, :, 1:] != ordered[:, :, :-1]).sum(2) + 1
        drawn = fg[:, : rows * 8, : cols * 8].reshape(n, rows, 8, cols, 8).mean((2, 4)).reshape(n, -1) > 0.5
        buckets = torch.bucketize(colours, torch.tensor([1, 2, 4, 8], device=colours.device))  # 1, 2, 3-4, 5-8, 9+
        return _histogram(buckets, drawn.float() + 1e-4, 5).sqrt()

    @staticmethod
    def _pairs(saturation, value, fg) -> torch.Tensor:
        here, there = _neighbours(_bins(value, 4) * 2 + _bins(saturation, 2))
        fg_here, fg_there = _neighbours(fg)
        ordered = torch.minimum(here, there) * 8 + torch.maximum(here, there)  # unordered pair of tones
        shares = _histogram(ordered, (here != there).float() * torch.minimum(fg_here, fg_there), 64)
        first, second = torch.triu_indices(8, 8, 1, device=fg.device)
        shares = shares[:, first * 8 + second]  # the 28 pairs of different tones (the rest have no weight)
        return torch.where(shares.sum(1, keepdim=True) > 0, shares, 1 / 28).sqrt()  # no tones meet: uniform
