"""The model registry: name -> class."""

from .progdtd import ProgDTD
from .vam import VarianceAwareMasking

MODELS = {
    VarianceAwareMasking.name: VarianceAwareMasking,
    ProgDTD.name: ProgDTD,
}
