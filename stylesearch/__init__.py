"""stylesearch: find works drawn in a similar art style, offline."""

__version__ = "0.1.0"
