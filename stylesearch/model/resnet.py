"""ResNet trunks (He et al. 2016) with torchvision's exact layout and parameter names.

Defined here rather than imported because `import torchvision` alone costs ~1.3 s, which
every cold `stylesearch similar` would pay; tests check that torchvision's resnet18/34
weights load into these modules and give identical outputs. Training code may still use
torchvision (transforms, datasets) freely.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


POOLINGS = ("avg", "meanstd")
WIDTHS = (64, 128, 256, 512)
STAGE_STATISTICS = 2 * (3 + sum(WIDTHS))  # channel mean and std of the input and of each stage


def channel_stats(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and standard deviation over the image plane (AdaIN statistics)."""
    var, mean = torch.var_mean(x, dim=(2, 3), correction=0)
    return torch.cat([mean, (var + 1e-5).sqrt()], 1)


class ResNetTrunk(nn.Module):
    """Stem and four stages of BasicBlocks, then a pooling that gives the feature vector.

    'avg' is torchvision's global average pool of the last stage (512-d; the paper's).
    'meanstd' concatenates channel means and standard deviations of the input and of every
    stage (Gram-like statistics, as in style transfer): colour, stroke and texture statistics
    at four scales, which a global average of the last stage mostly discards.
    `stage_stats` (with 'avg'): the output is [the pooled features, those statistics], for a
    fused map that reads both while mu keeps the pooling it was trained with.
    """

    def __init__(self, blocks: tuple[int, int, int, int], pooling: str = "avg", stage_stats: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} (known: {', '.join(POOLINGS)})")
        self.pooling = pooling
        self.stage_stats = stage_stats
        self.features = WIDTHS[-1] if pooling == "avg" else STAGE_STATISTICS  # the pooled part
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (width, count) in enumerate(zip(WIDTHS, blocks, strict=True)):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(inplanes, width, stride)] + [BasicBlock(width, width) for _ in range(count - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            inplanes = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_stage = self.pooling == "meanstd" or self.stage_stats
        stats = [channel_stats(x)] if per_stage else []
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            if per_stage:
                stats.append(channel_stats(x))
        if self.pooling == "meanstd":
            return torch.cat(stats, 1)
        pooled = torch.flatten(self.avgpool(x), 1)
        return torch.cat([pooled, *stats], 1) if stats else pooled


TRUNKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
