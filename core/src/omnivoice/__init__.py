"""omnivoice: realtime voice AI on phone lines.

The core defines the extension points (:mod:`omnivoice.hookspecs`) and the machinery that
finds plugins (:mod:`omnivoice.plugins`); providers, codecs and telephony transports come
from plugins, the core's own included.
"""

from importlib.metadata import PackageNotFoundError, version

from omnivoice.hookspecs import hookimpl

try:
    __version__ = version("omnivoice-core")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "hookimpl"]
