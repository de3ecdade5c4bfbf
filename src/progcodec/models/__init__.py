"""The model registry: name -> class."""

from .vam import VarianceAwareMasking

MODELS = {
    VarianceAwareMasking.name: VarianceAwareMasking,
}
