"""Write models/stylesearch-default.pt: an UNTRAINED, seeded random-init encoder.

It exists so that install, indexing and search work end to end before the bundled-model
issue ships trained weights; its rankings reflect random convolutional texture statistics,
not learned art style. Reproducible: python models/make_placeholder.py
"""

from pathlib import Path

import torch

from stylesearch.model.checkpoint import save_encoder
from stylesearch.model.encoder import EncoderConfig, StyleEncoder

if __name__ == "__main__":
    torch.manual_seed(0)
    model = StyleEncoder(EncoderConfig()).eval()
    out = Path(__file__).with_name("stylesearch-default.pt")
    info = save_encoder(out, model, name="placeholder-untrained", version="0", trained=False,
                        data={"note": "random init (seed 0); no training data"})
    print(f"wrote {out} ({out.stat().st_size >> 20} MiB), model id {info.model_id}")
