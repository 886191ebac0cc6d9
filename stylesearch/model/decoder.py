"""The paper's decoder (Fig. 2): ResNet18 mirrored, z -> image. Training only.

Stages run in reverse (512 -> 256 -> 128 -> 64 channels), each doubling the resolution
with nearest-neighbour upsampling before two 3x3 convolutions with a residual path; two last
doublings undo the stem's stride and max-pool. Output is in the encoder's normalised input
space, so reconstruction is compared with the normalised image.
"""

from __future__ import annotations

import torch
from torch import nn


class UpBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.skip = nn.Conv2d(inplanes, planes, 1, bias=False) if inplanes != planes else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.skip(x))


class StyleDecoder(nn.Module):
    def __init__(self, embed_dim: int, input_size: int) -> None:
        super().__init__()
        if input_size % 32:
            raise ValueError(f"the VAE needs an input size divisible by 32, not {input_size}")
        self.side = input_size // 32
        self.fc = nn.Linear(embed_dim, 512 * self.side * self.side)
        self.blocks = nn.Sequential(UpBlock(512, 256), UpBlock(256, 128), UpBlock(128, 64), UpBlock(64, 64), UpBlock(64, 32))
        self.out = nn.Conv2d(32, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(len(z), 512, self.side, self.side)
        return self.out(self.blocks(h))
