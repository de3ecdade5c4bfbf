"""The parts of CompressAI the codec uses, without CompressAI's package import.

``import compressai`` runs its ``__init__``, which imports every subpackage: the
point-cloud datasets and transforms pull in torch_geometric and, through it,
torch._dynamo, about 1.6 s of the 5 s a coding command took to start
(benchmarks/README, "start-up"). The codec needs four modules of it::

    compressai.entropy_models   EntropyBottleneck, GaussianConditional
    compressai.layers           GDN
    compressai.ans              RansEncoder, RansDecoder
    compressai.ops              (what those two import)

When nothing has imported compressai yet, this module registers the package
without running its ``__init__`` and imports just those. The package keeps
stand-ins for the two functions the entropy models call at run time and a
module ``__getattr__`` that runs the real ``__init__`` the first time anything
else is asked of it, so a later ``import compressai`` (a user's script, the
bench's CompressAI baseline) still sees all of it.

The entropy models also import scipy.stats (0.7 s) for one function, the
Gaussian quantile that ``update()`` needs when CDF tables are built after
training; coding reads the tables from the weights. That module is registered
the same way: its code runs when something first uses it.
"""

from __future__ import annotations

import importlib.util
import sys


def _register_lazily(name: str, **stand_ins) -> None:
    """Put module ``name`` in sys.modules without running its code; the first attribute
    it lacks (anything but ``stand_ins`` and what the import system sets) runs the real
    code in that same module object. A submodule import needs only the package's
    ``__path__``, so it does not trigger it. (The standard library's LazyLoader would
    not do: the import system reads ``__spec__`` from a module it finds in sys.modules,
    which already triggers LazyLoader's load.)"""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return  # let the imports below raise the usual ModuleNotFoundError
    module = importlib.util.module_from_spec(spec)

    def complete(attribute: str):
        for stand_in in ("__getattr__", *stand_ins):
            delattr(module, stand_in)
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    for key, value in stand_ins.items():
        setattr(module, key, value)
    module.__getattr__ = complete
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


if "compressai" not in sys.modules:
    if "scipy.stats" not in sys.modules:
        try:
            _register_lazily("scipy.stats")
        except ImportError:
            pass  # no scipy: compressai's own import will say so
    # compressai.entropy_models asks for these two when it builds a coder; the real
    # __init__ answers the same while no other coder is installed or chosen.
    _register_lazily("compressai", available_entropy_coders=lambda: ["ans"], get_entropy_coder=lambda: "ans")

from compressai.ans import RansDecoder, RansEncoder  # noqa: E402
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional  # noqa: E402
from compressai.layers import GDN  # noqa: E402

__all__ = ["EntropyBottleneck", "EntropyModel", "GaussianConditional", "GDN", "RansDecoder", "RansEncoder"]
