"""The exceptions and warnings that the public API raises."""


class ProgcodecError(Exception):
    """Base class of every error the API raises on bad input.

    A corrupt or truncated file, a file made with other weights, an unreadable
    image, an unknown model: each is a ``ProgcodecError`` (or a subclass) with
    a one-line message fit to show a user.
    """


class ContainerError(ProgcodecError):
    """The bytes are not a valid ``.pgc`` file (bad magic, header, CRC...)."""


class WeightsMismatchError(ProgcodecError):
    """The file was encoded with weights other than the ones loaded."""


class WeightsNotFoundError(WeightsMismatchError):
    """No weights with the id in the file's header were found on the search path."""


class DeterminismError(ProgcodecError):
    """The decoder's entropy parameters differ from the encoder's.

    rANS decoding needs exactly the same scale indexes on both sides; when the
    decoder reproduces different ones (another platform, another torch build)
    decoding would silently return garbage, so it stops instead.
    """


class ImageError(ProgcodecError):
    """The input image cannot be read or converted."""


class ProgcodecWarning(UserWarning):
    """Something was lost or repaired (dropped alpha, a damaged later layer)."""
