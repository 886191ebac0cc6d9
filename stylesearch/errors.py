"""The one exception type users see as a one-line message instead of a traceback."""


class StyleSearchError(Exception):
    """An expected failure (bad input, missing model, busy library): shown as one line."""


class ImageLoadError(StyleSearchError):
    """A file could not be turned into an image; the message is recorded in the catalog."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line, for the catalog and for stderr."""
    return (" ".join(str(exc).split()) or type(exc).__name__)[:limit]
