"""The library: catalog (source of truth), ANN index (derived), scanning and indexing."""
