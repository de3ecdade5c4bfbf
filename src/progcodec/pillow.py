"""A Pillow plugin for .pgc files: ``import progcodec.pillow``, then ``Image.open("photo.pgc")``.

Each layer prefix is a frame: frame 0 is layer 1 (the coarsest), the last frame
the whole file, so ``im.seek(k)`` shows the picture from k + 1 layers and
``im.n_frames`` counts the complete layers. Frames decode through the same
decoder state as ``progcodec.iter_decode``: seeking forward entropy-decodes
only the new layers. ``im.save("out.pgc")`` encodes (``model=``, ``ladder=``,
``preview=``, ``layers=``, ``bpp=``, ``max_bytes=`` as for ``progcodec.encode``).
"""

from __future__ import annotations

from PIL import Image, ImageFile

from . import container
from .errors import ContainerError

FORMAT = "PGC"


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


class PgcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "progcodec progressive learned image"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            pgc = container.parse(data)
        except ContainerError as e:
            raise SyntaxError(str(e)) from None
        self._pgc = pgc
        self._mode = "RGB"
        self._size = (pgc.header.width, pgc.header.height)
        self.n_frames = len(pgc.layers)
        self.is_animated = False          # frames are refinements, not an animation
        self.info["layers"] = len(pgc.layers)
        self.info["model"] = pgc.header.model
        self._frame = self.n_frames - 1   # opens at full quality
        self._decoder = self._finish = None
        self._decoded = 0                 # layers in the decoder state
        self.tile = []

    def seek(self, frame: int) -> None:
        if not self._seek_check(frame):
            return
        self._frame = frame
        self._im = None

    def tell(self) -> int:
        return self._frame

    def load(self):
        from .api import _decoder_for

        want = self._frame + 1
        if self._im is None or self._decoded != want:
            if self._decoder is None or self._decoded > want:    # backwards: start a fresh state
                self._decoder, self._finish = _decoder_for(self._pgc.header, None, (), "auto")
                self._decoded = 0
            for layer in self._pgc.layers[self._decoded:want]:
                self._decoder.add(layer)
            self._decoded = want
            self.im = self._finish(self._decoder.reconstruct()).im
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from . import api

    options = im.encoderinfo
    fp.write(api.encode(im.convert("RGB"), model=options.get("model", "vam"), ladder=options.get("ladder"),
                        preview=options.get("preview"), layers=options.get("layers"), bpp=options.get("bpp"),
                        max_bytes=options.get("max_bytes")))


def register() -> None:
    Image.register_open(FORMAT, PgcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".pgc")
    Image.register_mime(FORMAT, "image/x-progcodec")


register()
