"""progcodec: a progressive learned image codec.

>>> data = progcodec.encode("photo.png")          # bytes of a .pgc file
>>> coarse = progcodec.decode(data, layers=2)     # PIL.Image from 2 layers
"""

import warnings as _warnings

with _warnings.catch_warnings():
    # CompressAI's import (through torch_geometric) triggers torch's TorchScript
    # deprecation notice: noise for a user, and it comes before cli.py's filter.
    _warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    from .api import decode, encode, info, truncate
from .errors import ProgcodecError, ProgcodecWarning

__version__ = "0.1.0"
__all__ = ["encode", "decode", "info", "truncate", "ProgcodecError", "ProgcodecWarning", "__version__"]
