"""The entropy-parameter path in integer arithmetic: exact on every machine, and fast.

Ballé, Johnston, Minnen, "Integer networks for data compression with latent-variable
models", ICLR 2019: rANS needs the decoder's scale indexes to equal the encoder's
exactly, and a float network cannot promise that across machines. Here each
convolution of the parameter network runs on integers::

    x (float64) ─► round(x · 2^e[c]) ─► 128·hi + lo ─► two int8 GEMMs over all k·k taps at once,
                   per-channel steps,     int8 parts      against 64·hi' + lo' (int8 weight parts):
                   15-bit integers                        H = hi·hi',  M = 2·hi·lo' + lo·hi' (int32)
                                                                           │
    next layer ◄── LeakyReLU ◄── S · 2^6·s[o] + b[o] ◄── S = 2^7·H + M, exact in float64
                                 (float64: one rounding each)

Integer sums do not depend on the order a GEMM adds them in, and every float64
operation after them is a single correctly rounded multiply or add, so encoder
and decoder agree bit for bit whatever the CPU, thread count or BLAS.

The quantised weights (12-bit integers as two int8 parts, hi' within [-63, 63], lo' within
[-32, 31], so the GEMMs see int8 within [-64, 63]: a u8×s8 pair sum stays below 2^15, and
CPUs without VNNI cannot saturate either), the activation
steps and the output scales are computed once from the float weights and a few calibration crops
(:func:`quantize`) and shipped in the weights file; both sides read them from
there, never recompute them. The float64 path (gaussian.Float64Path) stays for
files written before, and for weights without an integer path.
"""

from __future__ import annotations

import copy
import functools
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..cpu_features import int8_gemm_supported
from .gaussian import PARAM_GRID_BITS, Float64Path
from .subpixel import subpixel_taps

# Weights are integers in [-4063, 4063], stored as 64·hi + lo with hi in [-63, 63] and lo in
# [-32, 31]: 7-bit int8 parts, so no u8×s8 pair sum can saturate on CPUs without VNNI (vpmaddubsw).
WEIGHT_LO_BITS = 6
WEIGHT_MAX = 63 * 64 + 31
# Activations are integers in [-2^14, 2^14) (int16), stored as 128·hi + lo with hi in [-128, 127], lo in [0, 127].
ACT_LIMIT = 1 << 14
ACT_LO_BITS = 7


# An int8 GEMM's engine. torch._int_mm is fast where oneDNN has an int8 kernel (AVX512-VNNI,
# AVX-VNNI, AMX) and a plain loop elsewhere: on an AVX2 CPU it took 18.7 s of a 768x512 encode
# that float32 GEMMs do in a fraction of a second. There oneDNN's quantised linear layer
# (unsigned × signed int8 products, AVX2's vpmaddubsw) is faster still: 1.6x the float32 GEMMs on
# the parameter path's largest GEMM, measured on that EPYC. All are exact, so the choice only moves time.
GEMM_ENGINES = ("int8", "u8s8", "float32")

# u8s8 sums a pair of u8 × s8 products in int16 before int32 where the CPU has no VNNI: with
# the u8 side within [0, 255], the s8 side must stay within [-64, 64] for a pair not to saturate.
U8S8_WEIGHT_MAX = 64


def _float32_exact() -> bool:
    """Does a float32 matmul here round like IEEE float32? Not where torch may run it in bf16 or TF32."""
    mkldnn = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    return (torch.get_float32_matmul_precision() == "highest"
            and getattr(mkldnn, "fp32_precision", "none") in ("none", "ieee"))


def _magnitude(b: torch.Tensor) -> int:
    """max |b|, at least 1 (an empty ``b`` too)."""
    return max(-int(b.min()), int(b.max()), 1) if b.numel() else 1


def _exact_chunk(magnitude: int) -> int:
    """Columns per chunk such that every partial sum of int8 products against weights of at most
    ``magnitude`` is an integer of at most 2^24, which float32 holds exactly: products are at most
    128·magnitude, so 2^11 columns for the parameter path's weight parts (within [-64, 63]),
    2^10 for any int8."""
    return 1 << (24 - 7 - math.ceil(math.log2(magnitude)))


def _prepared(b: torch.Tensor, engine: str, make):
    """``make(b)``, kept on the tensor for ``engine`` while ``b`` is not written to: the parameter
    path's weights are the same tensors image after image, so neither their scan for the chunk
    length nor their conversion or packing is repeated."""
    attr = f"_progcodec_{engine}"
    cached = getattr(b, attr, None)
    # a tensor made under inference_mode (coding) has no version counter; nothing writes to one after
    version = 0 if b.is_inference() else b._version
    if cached is None or cached[0] != version:
        cached = (version, make(b))
        setattr(b, attr, cached)
    return cached[1]


def _float_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The int8 product through float GEMMs, exactly: float32 over chunks of columns short enough
    that each add is exact, in any order (:func:`_exact_chunk`), the chunks added in int32;
    float64 in one GEMM (sums below 2^53) where float32 matmuls may be rounded lower."""
    if not _float32_exact():
        return (a.double() @ b.double()).to(torch.int32)
    chunk, b32 = _prepared(b, "float32", lambda b: (_exact_chunk(_magnitude(b)), b.float()))
    out = None
    for k in range(0, a.shape[1], chunk):
        part = (a[:, k:k + chunk].float() @ b32[k:k + chunk]).to(torch.int32)
        out = part if out is None else out.add_(part)
    return out if out is not None else torch.zeros(a.shape[0], b.shape[1], dtype=torch.int32)


def _u8s8_packed(b: torch.Tensor) -> tuple[int, list] | None:
    """``b``'s chunks (:func:`_exact_chunk`) packed for oneDNN, or None where ``b`` is wider than
    u8s8 takes (see :func:`_prepared`)."""
    def pack(b):
        magnitude = _magnitude(b)
        if magnitude > U8S8_WEIGHT_MAX:
            return None
        chunk = _exact_chunk(magnitude)
        return chunk, [torch.ops.onednn.qlinear_prepack(b[k:k + chunk].t().contiguous(), None)
                       for k in range(0, b.shape[0], chunk)]
    return _prepared(b, "u8s8", pack)


def _u8s8_matmul(a: torch.Tensor, b: torch.Tensor, packed: tuple[int, list]) -> torch.Tensor:
    """The int8 product on oneDNN's quantised linear layer: a + 128 as uint8 (the sign bit flipped)
    with zero point 128, so the kernel's integer sums are a·b exactly; its float32 output holds
    them exactly because each chunk's sums stay within 2^24; the chunks added in int32."""
    chunk, packs = packed
    n = b.shape[1]
    unsigned = a.view(torch.uint8).bitwise_xor(0x80)
    ones, zeros = torch.ones(n), torch.zeros(n, dtype=torch.int64)
    out = None
    for pack, k in zip(packs, range(0, a.shape[1], chunk)):
        part = torch.ops.onednn.qlinear_pointwise(unsigned[:, k:k + chunk], 1.0, 128, pack, ones, zeros, None,
                                                  1.0, 0, torch.float32, "none", [], "").to(torch.int32)
        out = part if out is None else out.add_(part)
    return out if out is not None else torch.zeros(a.shape[0], n, dtype=torch.int32)


@functools.cache
def u8s8_exact() -> bool:
    """Is oneDNN's quantised linear layer here, and exact? Checked once, against int64
    arithmetic, on the products that would show a saturated pair or a rounded output: rows
    of -128, of 127, of both in runs, and mixed, against columns of -64, 63, 64 and mixed, sums
    up to 2^24 a chunk, odd sums too; where it is missing or not exact, the engine is never chosen."""
    k = (1 << 12) - 1
    mixed = torch.arange(k).remainder(256).sub(128)
    a = torch.stack([torch.full((k,), -128), torch.full((k,), 127), mixed.sign() * 128 - (mixed >= 0).long(),
                     mixed]).to(torch.int8)
    b = torch.stack([torch.full((k,), -64), torch.full((k,), 63), torch.full((k,), 64),
                     mixed.remainder(129).sub(64)], dim=1).to(torch.int8)
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        return torch.equal(_u8s8_matmul(a, b, _u8s8_packed(b)).long(), a.long() @ b.long())
    except (AttributeError, RuntimeError):     # a torch without the op, or a CPU oneDNN cannot serve
        return False


@functools.cache
def gemm_engine() -> str:
    """The exact engine for this machine: int8 where the CPU has int8 dot products
    (:func:`~progcodec.cpu_features.int8_gemm_supported`) and torch an int8 GEMM, else u8s8 where
    oneDNN's quantised linear layer passes :func:`u8s8_exact`, else float32; or ``PROGCODEC_GEMM``
    where set. Decided from the CPU's flags and that check, not by timing: a timing taken beside
    other work on the cores picked the slow one."""
    forced = os.environ.get("PROGCODEC_GEMM")
    if forced:
        if forced not in GEMM_ENGINES:
            raise ValueError(f"PROGCODEC_GEMM must be one of {', '.join(GEMM_ENGINES)}, not {forced!r}")
        return forced
    if int8_gemm_supported() and hasattr(torch, "_int_mm"):
        return "int8"
    return "u8s8" if u8s8_exact() else "float32"


def int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int8 × int8 → int32 product (any CPU), on this machine's faster engine
    (:func:`gemm_engine`): the same integers either way."""
    engine = gemm_engine()
    if engine == "int8":
        try:
            return torch._int_mm(a, b)
        except (AttributeError, RuntimeError):   # a torch without it (tests remove it)
            pass
    elif engine == "u8s8" and u8s8_exact():
        packed = _u8s8_packed(b)
        if packed is not None:
            return _u8s8_matmul(a, b, packed)
    return _float_matmul(a, b)


def steps_to_int16(scaled: torch.Tensor) -> torch.Tensor:
    """Activations already in integer steps (float64, written in place) as int16 integers:
    rounding half to even is the same everywhere."""
    # out-of-range values (inf too) clamp, to integers, so before rounding as well as after;
    # NaN, whose cast to int is the platform's choice, is 0
    return scaled.nan_to_num_(nan=0.0).clamp_(-ACT_LIMIT, ACT_LIMIT - 1).round_().to(torch.int16)


def split_int8(x: torch.Tensor, lo_bits: int) -> torch.Tensor:
    """Integers x = 2^lo_bits · hi + lo with lo in [0, 2^lo_bits), as int8 parts stacked in one
    tensor (hi, lo): an arithmetic shift is a floor division, a mask the remainder (two's
    complement), both cheaper than division."""
    parts = torch.empty((2, *x.shape), dtype=torch.int8)
    parts[0].copy_(x >> lo_bits)
    parts[1].copy_(x & ((1 << lo_bits) - 1))
    return parts


def split_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights in [-WEIGHT_MAX, WEIGHT_MAX] as 64·hi + lo with lo in [-32, 31], |hi| <= 63."""
    half = 1 << (WEIGHT_LO_BITS - 1)
    hi = torch.div(w + half, 1 << WEIGHT_LO_BITS, rounding_mode="floor")
    return hi.to(torch.int8), (w - hi * (1 << WEIGHT_LO_BITS)).to(torch.int8)


class IntegerConv(nn.Module):
    """One Conv2d (stride 1) or ConvTranspose2d, then optionally a LeakyReLU (slope 0: a ReLU), on integers.

    Works channels-last: (N, H, W, C) float64 in and out. Buffers (in the weights file):
    ``weight`` int8, the weights' hi parts then their lo parts along the columns: (k·k, C_in,
    2·C_out) for a conv, one (C_in, 2·C_out) matrix per tap; (C_in, 2·k·k·C_out) for a
    transposed conv (columns: hi or lo, tap row, tap column, output channel); ``in_exp`` int32
    (C_in,): inputs are rounded to steps of 2^-in_exp; ``out_scale`` and ``bias`` float64 (C_out,).
    """

    def __init__(self, transposed: bool, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int,
                 output_padding: int = 0, negative_slope: float | None = None):
        super().__init__()
        if not transposed and stride != 1:
            raise ValueError("integer convolutions have stride 1 (transposed ones any)")
        if transposed and (kernel % 2 == 0 or padding != kernel // 2 or output_padding != stride - 1):
            raise ValueError("integer transposed convolutions have an odd kernel k, padding k // 2 and "
                             "output padding stride - 1 (an output stride times the input)")
        self.transposed, self.in_ch, self.out_ch = transposed, in_ch, out_ch
        self.kernel, self.stride, self.padding, self.output_padding = kernel, stride, padding, output_padding
        self.negative_slope = negative_slope
        k2 = kernel * kernel
        if 2 * in_ch * k2 * 128 * 64 >= 2**31:    # the most an int32 sum of products can reach
            raise ValueError(f"{in_ch}x{kernel}x{kernel} inputs per output overflow int32 sums")
        shape = (in_ch, 2 * k2 * out_ch) if transposed else (k2, in_ch, 2 * out_ch)
        self.register_buffer("weight", torch.zeros(shape, dtype=torch.int8))
        self.register_buffer("in_exp", torch.zeros(in_ch, dtype=torch.int32))
        self.register_buffer("out_scale", torch.zeros(out_ch, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(out_ch, dtype=torch.float64))

    def __getstate__(self) -> dict:
        """A copy (``copy.deepcopy``, pickling) leaves the GEMM operands made from the buffers
        behind: it makes them again, and oneDNN's packed weights among them cannot be copied."""
        state = self.__dict__.copy()
        state.pop("_cached", None)
        return state

    def input_steps(self) -> torch.Tensor:
        """2^in_exp per input channel (float64): inputs times these are in integer steps."""
        return torch.ldexp(torch.ones((), dtype=torch.float64), self.in_exp.double())

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """int16 steps of x (N, H, W, C): a multiply by a power of two is exact, and rounding
        half to even is the same everywhere."""
        return steps_to_int16(x * self.input_steps())

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The GEMMs' right-hand sides, made from the stored parts: (w_hi, [2·w_lo; w_hi] stacked
        on the rows, out_scale · 2^6), rows per input column (tap, then input channel), columns per
        output (tap row, tap column, channel for a transposed conv). 2·w_lo stays within [-64, 62]."""
        # made again when the buffer is replaced or written in place (load_state_dict copies into it)
        versions = (self.weight._version, self.out_scale._version)
        cached = getattr(self, "_cached", None)
        if (cached is None or cached["weight"] is not self.weight or cached["out_scale"] is not self.out_scale
                or cached["versions"] != versions):
            half = self.weight.shape[-1] // 2
            hi, lo = self.weight[..., :half], self.weight[..., half:]
            if not self.transposed:
                hi, lo = hi.reshape(-1, half), lo.reshape(-1, half)
            self._cached = {"weight": self.weight, "out_scale": self.out_scale, "versions": versions,
                            "operands": (hi.contiguous(), torch.cat([lo * 2, hi]),
                                         self.out_scale * float(1 << WEIGHT_LO_BITS))}
        return self._cached["operands"]

    def _subpixel(self) -> tuple[torch.Tensor, torch.Tensor, int, tuple[int, int]]:
        """The transposed conv (odd k, p = k // 2, output padding s - 1: s times its input) as a
        stride-1 conv to s·s·C_out channels (phase row, phase column, channel) and a pixel shuffle
        (coding/subpixel.py): (w_hi, [2·w_lo; w_hi], kernel, (padding before, after)) in ``_conv``'s
        layout. The same integer products, added in another order, which integers do not notice."""
        k, s, p = self.kernel, self.stride, self.padding
        hi, mixed, _ = self._weights()
        cached = self._cached
        if "subpixel" not in cached:
            parts = []
            for part in (hi, mixed[:self.in_ch], mixed[self.in_ch:]):   # w_hi, 2·w_lo, w_hi: (C_in, k·k·C_out)
                taps, pads = subpixel_taps(part.reshape(self.in_ch, k, k, self.out_ch), s, p)
                parts.append(taps.reshape(-1, s * s * self.out_ch))
            cached["subpixel"] = (parts[0], torch.cat(parts[1:]), taps.shape[0], pads)
        return cached["subpixel"]

    def _products(self, x: torch.Tensor, operands=None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (rows, 2·K) int8, the input's hi parts then its lo parts. Two int32 GEMMs, one on the
        hi columns alone: (hi·w_hi, 2·hi·w_lo + lo·w_hi). The product of the two lo parts is left
        out: below 2^-13 of the whole, it would cost a third more arithmetic."""
        w_hi, w_mixed = operands or self._weights()[:2]
        # the hi columns as a view: the GEMM reads the rows at their stride, no copy
        return int_matmul(x[:, :x.shape[1] // 2], w_hi), int_matmul(x, w_mixed)

    @staticmethod
    def _combine(high: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """2^7·high + mixed in float64, exact (integers below 2^53); times 2^6 it is
        2^13·hi·hi' + 2^7·hi·lo' + 2^6·lo·hi'."""
        return mixed.double().add_(high, alpha=1 << ACT_LO_BITS)

    def _conv(self, q: torch.Tensor, subpixel=None) -> torch.Tensor:
        """The conv's sums (see _combine) of int16 (N, H, W, C_in) input steps: (N, H, W, C_out)
        float64. ``subpixel`` (a transposed conv's, see :meth:`_subpixel`): its operands, kernel
        and padding.

        The input is padded (once, before it is split into int8 parts), then each part is one
        flat (rows, C_in) matrix; the tap at (i, j) reads it shifted by
        i·W_padded + j rows, so the GEMM's rows are those k·k shifted views side by side (one
        contiguous copy, tap by tap as the weights are stored), hi parts then lo parts. Rows that
        straddle the padding are computed and dropped."""
        if subpixel is None:
            operands, k, (before, after) = None, self.kernel, (self.padding, self.padding)
        else:
            w_hi, w_mixed, k, (before, after) = subpixel
            operands = (w_hi, w_mixed)
        if before or after:
            q = F.pad(q, (0, 0, before, after, before, after))
        parts = split_int8(q, ACT_LO_BITS)
        n, hp, wp = q.shape[:3]
        rows, c_in = n * hp * wp, self.in_ch
        span = rows - (k - 1) * (wp + 1)
        # row r, part p, tap (i, j), channel: parts[p] flat at row r + i·W_padded + j; one copy
        # (0.36 ms against 0.65 for concatenating the 2·k·k shifted views, whose rows are short: 576 channels)
        x = parts.as_strided((span, 2, k, k, c_in), (c_in, rows * c_in, wp * c_in, c_in, 1)).reshape(span, -1)
        sums = self._combine(*self._products(x, operands))
        # the rows of valid positions, read in place: row i·W_padded + j (plus the image's offset)
        c = sums.shape[1]
        return sums.as_strided((n, hp - before - after, wp - before - after, c), (hp * wp * c, wp * c, c, 1))

    def _transposed(self, q: torch.Tensor) -> torch.Tensor:
        """The transposed conv's sums: its phases side by side on the channels (:meth:`_subpixel`),
        shuffled into place."""
        n, height, width = q.shape[:3]
        s = self.stride
        t = self._conv(q, self._subpixel()).reshape(n, height, width, s, s, self.out_ch)
        return t.permute(0, 1, 3, 2, 4, 5).reshape(n, height * s, width * s, self.out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W, C_in) float64 -> (N, H', W', C_out) float64."""
        return self.outputs(self.quantize_input(x))

    def outputs(self, q: torch.Tensor, next_steps: torch.Tensor | float | None = None) -> torch.Tensor:
        """The layer on int16 input steps (N, H, W, C_in): (N, H', W', C_out) float64, multiplied by
        ``next_steps`` (the next layer's :meth:`input_steps`, or the parameter grid's 2^bits) where
        given. Those are powers of two, so folding them into the scale and bias changes no bit of
        what the next layer's :meth:`quantize_input` would make (scaling by 2^e commutes with every
        rounding here, LeakyReLU's included): one pass over the activations fewer."""
        sums = self._transposed(q) if self.transposed else self._conv(q)
        scale, bias = self._weights()[2], self.bias
        if next_steps is not None:
            scale, bias = scale * next_steps, bias * next_steps
        # sums · (2^6 · out_scale): one rounding (2^6 is exact), then the bias (no FMA)
        out = (sums * scale).add_(bias)
        if self.negative_slope == 0.0:
            out = F.relu_(out)
        elif self.negative_slope is not None:
            out = F.leaky_relu_(out, self.negative_slope)
        return out

    @classmethod
    def from_float(cls, layer: nn.Conv2d | nn.ConvTranspose2d, input_max: torch.Tensor,
                   negative_slope: float | None) -> "IntegerConv":
        """Quantise ``layer`` for inputs whose channels reach ``input_max`` in magnitude."""
        transposed = isinstance(layer, nn.ConvTranspose2d)
        k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
        in_ch, out_ch = layer.in_channels, layer.out_channels
        q = cls(transposed, in_ch, out_ch, k, s, p, layer.output_padding[0] if transposed else 0, negative_slope)
        # the finest power-of-two step that keeps twice the calibrated range inside the integers
        headroom = 2.0 * input_max.double().clamp_min(1e-6)
        exps = [math.floor(math.log2((ACT_LIMIT - 1) / float(m))) for m in headroom]
        q.in_exp.copy_(torch.tensor(exps, dtype=torch.int32))
        step = torch.ldexp(torch.ones((), dtype=torch.float64), -q.in_exp.double())
        w = layer.weight.detach().double()
        if transposed:    # (C_in, C_out, k, k): weight per integer input step, one scale per output
            w = w * step.reshape(-1, 1, 1, 1)
            scale = w.abs().amax(dim=(0, 2, 3)).clamp_min(1e-30) / WEIGHT_MAX
            w_int = torch.round(w / scale.reshape(1, -1, 1, 1)).long().permute(0, 2, 3, 1)   # C_in, k, k, C_out
            hi, lo = split_weight(w_int.reshape(in_ch, -1))
            q.weight.copy_(torch.cat([hi, lo], dim=-1))
        else:             # (C_out, C_in, k, k)
            w = w * step.reshape(1, -1, 1, 1)
            scale = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-30) / WEIGHT_MAX
            w_int = torch.round(w / scale.reshape(-1, 1, 1, 1)).long().permute(2, 3, 1, 0)   # k, k, C_in, C_out
            hi, lo = split_weight(w_int)
            q.weight.copy_(torch.cat([hi, lo], dim=-1).reshape(k * k, in_ch, 2 * out_ch))
        q.out_scale.copy_(scale)
        q.bias.copy_(layer.bias.detach().double() if layer.bias is not None else torch.zeros(out_ch))
        return q


class IntegerNetwork(nn.Module):
    """A Sequential of Conv2d / ConvTranspose2d / LeakyReLU / ReLU as IntegerConvs: (N, C, H, W) float64
    in and out, channels-last inside."""

    def __init__(self, layers: list[IntegerConv]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @classmethod
    def like(cls, sequential: nn.Sequential) -> "IntegerNetwork":
        """An empty integer network shaped like ``sequential``, for weights to load into."""
        layers = []
        for conv, slope in _convs_of(sequential):
            transposed = isinstance(conv, nn.ConvTranspose2d)
            layers.append(IntegerConv(transposed, conv.in_channels, conv.out_channels, conv.kernel_size[0],
                                      conv.stride[0], conv.padding[0],
                                      conv.output_padding[0] if transposed else 0, slope))
        return cls(layers)

    def forward(self, *inputs: torch.Tensor, grid_bits: int | None = None) -> torch.Tensor:
        """The inputs side by side on the channels, as the float network takes them (one or more).
        With ``grid_bits``, the output rounded to multiples of 2^-grid_bits, bit for bit as
        :func:`~progcodec.coding.gaussian.snap` rounds it: the power of two folds into the last
        layer's scale and bias (see :meth:`IntegerConv.outputs`)."""
        layers = self.layers
        channels = sum(t.shape[1] for t in inputs)
        if channels != layers[0].in_ch:
            raise ValueError(f"the inputs have {channels} channels, the network takes {layers[0].in_ch}")
        # each input rounded to its channels' steps, then channels-last in one copy of int16s (a
        # quarter of float64's bytes): each layer then reads its input's rows as views, not copies
        steps, quantized = layers[0].input_steps(), []
        for t in inputs:
            part, steps = steps[:t.shape[1]], steps[t.shape[1]:]
            quantized.append(steps_to_int16(t.double() * part.reshape(-1, 1, 1)).permute(0, 2, 3, 1))
        q = torch.cat(quantized, dim=3)
        for layer, after in zip(layers[:-1], layers[1:]):
            q = steps_to_int16(layer.outputs(q, after.input_steps()))
        if grid_bits is None:
            return layers[-1].outputs(q).permute(0, 3, 1, 2).contiguous()
        grid = float(1 << grid_bits)
        return layers[-1].outputs(q, grid).round_().permute(0, 3, 1, 2).contiguous().div_(grid)


class IntegerPath:
    """:class:`~progcodec.coding.gaussian.Float64Path`'s counterpart: the inputs (concatenated on
    the channels, as the float network does) through the integer network, on the CPU, the output
    on the shared parameter grid."""

    def __init__(self, network: IntegerNetwork):
        self.network = copy.deepcopy(network).to("cpu").eval()

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(*(t.detach().to("cpu", torch.float64) for t in inputs), grid_bits=PARAM_GRID_BITS)


def exact_path(module: nn.Module, integer: IntegerNetwork | None):
    """The deterministic path of an entropy-parameter network: its integer version where the
    weights carry one, else its float64 copy."""
    return IntegerPath(integer) if integer is not None else Float64Path(module)


def _convs_of(sequential: nn.Sequential) -> list[tuple[nn.Module, float | None]]:
    """(conv, slope of the LeakyReLU after it, 0 for a ReLU, or None) for each conv of ``sequential``."""
    modules, out = list(sequential), []
    for i, m in enumerate(modules):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            after = modules[i + 1] if i + 1 < len(modules) else None
            slope = (after.negative_slope if isinstance(after, nn.LeakyReLU)
                     else 0.0 if isinstance(after, nn.ReLU) else None)
            out.append((m, slope))
        elif not isinstance(m, (nn.LeakyReLU, nn.ReLU)):
            raise TypeError(f"no integer version of {type(m).__name__}")
    return out


@torch.no_grad()
def quantize(sequential: nn.Sequential, calibration: list[torch.Tensor]) -> IntegerNetwork:
    """The integer version of ``sequential``, its activation steps set from the largest value each
    input channel takes on ``calibration`` inputs (run through the float64 network)."""
    layers, inputs = [], [x.to("cpu", torch.float64) for x in calibration]
    for conv, slope in _convs_of(sequential):
        input_max = torch.stack([x.abs().amax(dim=(0, 2, 3)) for x in inputs]).amax(0)
        layers.append(IntegerConv.from_float(conv, input_max, slope))
        conv64 = copy.deepcopy(conv).to("cpu", torch.float64)
        inputs = [conv64(x) for x in inputs]
        if slope is not None:
            inputs = [F.leaky_relu(x, slope) if slope else F.relu(x) for x in inputs]
    return IntegerNetwork(layers)
