"""progcodec: a progressive learned image codec.

>>> data = progcodec.encode("photo.png")          # bytes of a .pgc file
>>> coarse = progcodec.decode(data, layers=2)     # PIL.Image from 2 layers
"""

from .allocator import keep_freed_memory
from .api import decode, encode, info, iter_decode, truncate  # light: torch loads on the first encode/decode
from .errors import ProgcodecError, ProgcodecWarning

__version__ = "0.3.7"
__all__ = ["encode", "decode", "iter_decode", "info", "truncate", "keep_freed_memory", "ProgcodecError",
           "ProgcodecWarning", "__version__"]
