"""Analysis and synthesis transforms shared by the models (Ballé 2018 style)."""

from compressai.layers import GDN
from torch import nn


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, output_padding=stride - 1, padding=kernel // 2
    )


def analysis_trunk(n: int) -> nn.Sequential:
    """Image -> features at 1/8 resolution; a final ``conv(n, M)`` gives a latent."""
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n))


def synthesis(n: int, m: int) -> nn.Sequential:
    """Latent at 1/16 resolution -> image."""
    return nn.Sequential(
        deconv(m, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True),
        deconv(n, 3),
    )


def hyper_analysis(in_ch: int, n: int) -> nn.Sequential:
    """Latent -> hyper-latent at 1/4 of the latent's resolution."""
    return nn.Sequential(
        conv(in_ch, n, 3, 1), nn.LeakyReLU(inplace=True),
        conv(n, n), nn.LeakyReLU(inplace=True),
        conv(n, n),
    )


def hyper_synthesis(n: int, out_ch: int) -> nn.Sequential:
    """Hyper-latent -> entropy-parameter features at the latent's resolution."""
    mid = (n + out_ch) // 2
    return nn.Sequential(
        deconv(n, n), nn.LeakyReLU(inplace=True),
        deconv(n, mid), nn.LeakyReLU(inplace=True),
        conv(mid, out_ch, 3, 1),
    )
