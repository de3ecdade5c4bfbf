"""Build hook: the shipped weights (weights/ at the top of the repository) go into the
package as progcodec/shipped_weights/, so a wheel or a non-editable install carries them."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class build_py_with_weights(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "progcodec" / "shipped_weights"
        for source in sorted((ROOT / "weights").rglob("*")):
            if source.suffix in (".safetensors", ".json") and source.is_file():
                dest = target / source.relative_to(ROOT / "weights")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)


setup(cmdclass={"build_py": build_py_with_weights})
