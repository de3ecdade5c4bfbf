"""A rich progress display for training events (CLI side: the loop never prints)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainingProgress:
    def __init__(self):
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
            console=self.console,
        )
        self.tasks = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def _task(self, name, total):
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total, stats="")
        return self.tasks[name]

    def on_event(self, kind: str, info: dict) -> None:
        if kind == "load":
            self.progress.update(self._task("loading images", info["total"]), completed=info["done"])
        elif kind == "cache":
            self.progress.update(self._task("caching REM statistics", info["total"]), completed=info["done"])
        elif kind == "step":
            psnr = "" if info["psnr"] != info["psnr"] else f" psnr {info['psnr']:.2f}"   # nan: a rate-only stage
            if not self.console.is_terminal and info["step"] % 50 == 0:
                self.console.log(f"step {info['step']}/{info['steps']}: loss {info['loss']:.3f} "
                                 f"bpp {info['bpp']:.3f}{psnr}")
            stats = f"loss {info['loss']:.3f}  bpp {info['bpp']:.3f}{psnr}  lr {info['lr']:.1e}"
            self.progress.update(self._task("training", info["steps"]), completed=info["step"], stats=stats)
        elif kind == "val" and "rem_bpp_before" in info:
            self.console.log(f"val @ {info['step']}: residual after the REM points {info['rem_bpp_before']:.4f} bpp "
                             f"-> {info['rem_bpp_after']:.4f} bpp with the REMs"
                             + (f", a later layer {info['rem_psnr']:.2f} dB" if "rem_psnr" in info else ""))
        elif kind == "val":
            self.console.log(
                f"val @ {info['step']}: base {info['bpp_base']:.3f} bpp {info['psnr_base']:.2f} dB, "
                f"full {info['bpp_full']:.3f} bpp {info['psnr_full']:.2f} dB")
        elif kind == "checkpoint" and not self.console.is_terminal:
            self.console.log(f"checkpoint @ {info['step']}: {info['path']}")
