"""Queries over a library: similar (k nearest styles); morph and pictures build on it."""
