"""``python -m progcodec`` (also what torchrun launches): the CLI."""

from .cli import main

if __name__ == "__main__":
    main()
