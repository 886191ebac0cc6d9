"""Training data: artist-labelled images from folders, a CSV or a calibre library; a split
by artist; P x K batches; augmentations. Images load through `stylesearch.imaging`, the same
code that indexing uses, so training sees exactly what search will see.
"""

from __future__ import annotations

import csv
import io
import os
import random
import sqlite3
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2 as T

from ..errors import ImageLoadError, StyleSearchError
from ..imaging import load_image
from ..library.scan import walk


@dataclass(frozen=True)
class Example:
    path: str
    artist: str


def from_folders(root: Path) -> list[Example]:
    """ROOT/<artist>/... : every supported file at any depth below an artist's folder."""
    examples = []
    for artist in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        unlisted: list = []
        examples += [Example(os.fsdecode(path), artist.name) for path, _ in walk(os.fsencode(artist), unlisted)]
    return examples


def from_csv(path: Path) -> list[Example]:
    """A CSV with `path,artist` columns; relative paths are relative to the CSV file."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "artist"} <= set(reader.fieldnames):
            raise StyleSearchError(f"{path}: the CSV needs a header with 'path' and 'artist' columns")
        return [Example(str((path.parent / row["path"]).resolve()), row["artist"]) for row in reader if row["path"] and row["artist"]]


def from_calibre(library: Path) -> list[Example]:
    """A calibre library, read-only: each book's cover, labelled by its first author."""
    db = sqlite3.connect(f"file:{library / 'metadata.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            """SELECT b.path, (SELECT a.name FROM books_authors_link l JOIN authors a ON a.id = l.author
                               WHERE l.book = b.id ORDER BY l.id LIMIT 1)
               FROM books b WHERE b.has_cover = 1"""
        ).fetchall()
    finally:
        db.close()
    return [Example(str(library / path / "cover.jpg"), author) for path, author in rows if author]


def load_examples(source: str | os.PathLike) -> list[Example]:
    """Folder tree, CSV file or calibre library (a folder holding metadata.db)."""
    path = Path(source).expanduser()
    if path.is_dir() and (path / "metadata.db").is_file():
        examples = from_calibre(path)
    elif path.is_dir():
        examples = from_folders(path)
    elif path.suffix.lower() == ".csv" and path.is_file():
        examples = from_csv(path)
    else:
        raise StyleSearchError(f"training data not found: {path} (a folder of artist folders, a .csv or a calibre library)")
    if not examples:
        raise StyleSearchError(f"no images found in {path}")
    return examples


def split_by_artist(examples: list[Example], held_out: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Hold out whole artists (unseen styles, as the paper's 'unseen' test): a fraction (< 1)
    or a count (>= 1) of them."""
    artists = sorted({e.artist for e in examples})
    random.Random(seed).shuffle(artists)
    n = int(held_out) if held_out >= 1 else round(len(artists) * held_out)
    test = set(artists[:n])
    return [e for e in examples if e.artist not in test], [e for e in examples if e.artist in test]


def source_of(artist: str) -> str:
    """The source part of an artist label 'source/style' (the whole label when there is none)."""
    return artist.split("/", 1)[0]


class PKSampler:
    """Batches of P artists x K images (paper: 20 x 20). Artists with fewer than K images are
    sampled with replacement and listed in `short`. An epoch is one pass over the images, or
    `batches` batches when given (so validation comes at the same step counts whatever the
    data size). With `groups` (a group per label, e.g.
    its source), each batch takes its P artists evenly from the groups, so a source with
    a thousand synthetic artists cannot crowd out one with twenty real ones. In distributed
    runs each rank draws its own batches from a rank-specific stream."""

    def __init__(self, labels: list[int], p: int, k: int, seed: int = 0, rank: int = 0, world: int = 1,
                 groups: dict[int, str] | None = None, batches: int = 0) -> None:
        self.by_label: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            self.by_label[label].append(index)
        if len(self.by_label) < 2:
            raise StyleSearchError("training needs at least two artists")
        self.p, self.k = min(p, len(self.by_label)), k
        self.short = sorted(label for label, items in self.by_label.items() if len(items) < k)
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0
        self.batches = batches or max(1, len(labels) // (self.p * self.k * world))
        members: dict[str, list[int]] = defaultdict(list)
        for label in sorted(self.by_label):
            members[(groups or {}).get(label, "")].append(label)
        self.groups = [members[g] for g in sorted(members)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def artists(self, rng: random.Random) -> list[int]:
        """P distinct labels, dealt round-robin from the groups in a random order."""
        pools = [rng.sample(group, len(group)) for group in self.groups]
        chosen: list[int] = []
        while len(chosen) < self.p:
            for pool in rng.sample(pools, len(pools)):
                if pool and len(chosen) < self.p:
                    chosen.append(pool.pop())
        return chosen

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}")
        for _ in range(self.batches):
            batch = []
            for label in self.artists(rng):
                items = self.by_label[label]
                batch += rng.sample(items, self.k) if len(items) >= self.k else rng.choices(items, k=self.k)
            yield batch


def augmentations(kind: str, size: int, mean: tuple, std: tuple, zoom: float = 1.0) -> T.Compose:
    """'simclr': the paper's SimCLR set (random resized crop, colour jitter, greyscale, blur,
    Gaussian noise). 'style': what keeps style intact (the shorter side resized to zoom x
    size, then a random size x size crop, flips, 90-degree turns; no colour or blur changes,
    which erase palette and line weight): zoom 1 shows the whole image as search sees it.
    'none': resize and centre crop, as at inference."""
    tail = [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    norm = [T.Normalize(mean, std)]
    if kind == "simclr":
        ops = [
            T.RandomResizedCrop(size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), T.RandomGrayscale(0.2),
            T.RandomApply([T.GaussianBlur(max(3, size // 10 * 2 + 1))], p=0.5),
            *tail, T.RandomApply([T.GaussianNoise(sigma=0.05)], p=0.5),
        ]
    elif kind == "style":
        ops = [
            T.Resize(round(size * zoom)), T.RandomCrop(size, pad_if_needed=True, fill=255, padding_mode="constant"),
            T.RandomHorizontalFlip(),
            T.RandomChoice([T.RandomRotation((a, a)) for a in (0, 90, 180, 270)]), *tail,
        ]
    elif kind == "none":
        ops = [T.Resize(size), T.CenterCrop(size), *tail]
    else:
        raise StyleSearchError(f"unknown augmentation set {kind!r} (simclr, style, none)")
    return T.Compose(ops + norm)


def noisy_copy(pixels: np.ndarray, level: int) -> np.ndarray:
    """uint8 pixels with half their channel values moved by a random -`level`..`level`
    levels (seeded by the pixels, so a copy is the same in every run and thread): a scan's
    or a re-save's noise, which must not read as style."""
    rng = np.random.default_rng(zlib.crc32(pixels.tobytes()) + level)
    change = rng.integers(-level, level + 1, pixels.shape) * (rng.random(pixels.shape) < 0.5)
    return np.clip(pixels.astype(np.int16) + change, 0, 255).astype(np.uint8)


def jpeg_copy(img: Image.Image, quality: int) -> Image.Image:
    """`img` saved as a JPEG of `quality` and decoded again: the blocks and ringing most
    collections' files carry, which a drawing rendered to PNG lacks."""
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


class ImageDataset(Dataset):
    """(image tensor(s), label) pairs; an unreadable image yields None and is counted, so a
    broken file never stops an epoch (`collate` drops the Nones)."""

    def __init__(self, paths: list[str], labels: list[int], transform, *, views: int = 1, load_size: int = 0) -> None:
        self.paths, self.labels, self.transform, self.views, self.load_size = paths, labels, transform, views, load_size
        self.failed: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            img = load_image(self.paths[index], self.load_size)
        except ImageLoadError:
            self.failed.add(self.paths[index])
            return None
        views = [self.transform(img) for _ in range(self.views)]
        return (views[0] if self.views == 1 else torch.stack(views)), self.labels[index]


def collate(items: list) -> tuple[torch.Tensor, torch.Tensor] | None:
    items = [item for item in items if item is not None]
    if not items:
        return None
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
