"""Adapters between stylesearch and other applications (building and installing plugins)."""
