"""``progcodec bench``: our models layer by layer against Pillow's codecs.

``run_bench`` (runner) measures and returns plain data; ``write_report``
(report) writes results.json, bd_rate.json, rd.png and layers.png; ``metrics``
is the one place where images are scored (PSNR-RGB, MS-SSIM).
"""

from .baselines import ALL_BASELINES, available_baselines, make_baseline, parse_baselines
from .runner import HYPERPRIOR_REFERENCE, BenchResult, list_images, run_bench
from .report import bd_rates, bd_table, codec_table, write_report

__all__ = [
    "ALL_BASELINES", "HYPERPRIOR_REFERENCE", "BenchResult", "available_baselines", "bd_rates", "bd_table",
    "codec_table", "list_images", "make_baseline", "parse_baselines", "run_bench", "write_report",
]
