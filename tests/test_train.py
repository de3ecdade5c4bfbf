"""Training: the loss falls, resume is exact, export -> load -> code is stable."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from progcodec.train.data import split_holdout
from progcodec.train.loop import TrainConfig, train
from progcodec.weights import load_model

TINY = {"N": 16, "M": 24}


def _config(photo_dir, tmp_path, model="vam", **kw):
    defaults = dict(data=[str(photo_dir)], model=model, out=str(tmp_path / f"{model}.safetensors"),
                    steps=4, batch=4, crop=64, lr=1e-3, warmup=1, checkpoint_every=2, val_every=1000,
                    threads=1, model_args=TINY)
    defaults.update(kw)
    return TrainConfig(**defaults)


@pytest.mark.parametrize("model", ["vam", "progdtd"])
def test_a_few_steps_lower_the_loss(photo_dir, tmp_path, model):
    losses = []
    train(_config(photo_dir, tmp_path, model, steps=40, lr=2e-3, warmup=5),
          on_event=lambda kind, info: kind == "step" and losses.append(info["loss"]))
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])


def test_resume_continues_from_the_same_step(photo_dir, tmp_path):
    straight = _config(photo_dir, tmp_path / "a", steps=6)
    train(straight)
    first = _config(photo_dir, tmp_path / "b", steps=3)
    train(first)
    steps_seen = []
    resumed = _config(photo_dir, tmp_path / "b", steps=6, resume=str(first.checkpoint_path))
    train(resumed, on_event=lambda kind, info: kind == "step" and steps_seen.append(info["step"]))
    assert steps_seen == [4, 5, 6]
    a = torch.load(straight.checkpoint_path, weights_only=False)["model"]
    b = torch.load(resumed.checkpoint_path, weights_only=False)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("model", ["vam", "progdtd"])
def test_export_load_encode_is_stable(photo_dir, tmp_path, model):
    import progcodec

    cfg = _config(photo_dir, tmp_path, model, steps=2)
    manifest = train(cfg)
    assert manifest["training"]["steps"] == 2 and len(manifest["sha256"]) == 64
    one, two = load_model(cfg.out), load_model(cfg.out)
    image = photo_dir / "coffee.png"
    data = progcodec.encode(image, model=one)
    assert data == progcodec.encode(image, model=two)
    assert progcodec.decode(data, model=two).size == (160, 120)
    # the export carries the integer parameter path, calibrated on the held-out crops
    assert progcodec.info(data)["integer_params"] is True is one.has_integer_params
    assert manifest["config"]["integer_params"] is True and "integer_params" in manifest["training"]


def test_export_without_the_integer_path_and_fine_tune_from_one(photo_dir, tmp_path):
    """--no-integer-params exports the float64 path; a fine-tune from weights with an integer
    path leaves it behind (it belongs to the old float weights) and exports a fresh one."""
    import progcodec

    plain = train(_config(photo_dir, tmp_path / "a", steps=1, integer_params=False))
    assert "integer_params" not in plain["config"]
    assert not load_model(str(tmp_path / "a" / "vam.safetensors")).has_integer_params
    first = _config(photo_dir, tmp_path / "b", steps=1)
    train(first)
    tuned = _config(photo_dir, tmp_path / "c", steps=2, init=first.out)
    train(tuned)
    old, new = load_model(first.out), load_model(tuned.out)
    assert new.has_integer_params
    assert not torch.equal(old.h_s_integer.layers[0].weight, new.h_s_integer.layers[0].weight)
    data = progcodec.encode(photo_dir / "coffee.png", model=new)
    assert progcodec.decode(data, model=new).size == (160, 120)


def test_kodak_is_refused(tmp_path):
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    with pytest.raises(ValueError, match="Kodak"):
        train(TrainConfig(data=[str(kodak)]))


@pytest.mark.slow
def test_torchrun_two_cpu_processes(photo_dir, tmp_path):
    """DistributedDataParallel on the gloo backend, two CPU processes."""
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "progcodec", "train", str(photo_dir), "--model", "progdtd", "--out", str(out),
           "--steps", "3", "--batch", "2", "--crop", "64", "--threads", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = load_model(str(out)).manifest
    assert manifest["training"]["processes"] == 2
    assert manifest["training"]["batch"] == 4


def test_resumed_ranks_draw_different_crops(photo_dir):
    """Resuming under torchrun: rank 0 continues its saved streams exactly, other ranks get
    their own (the checkpoint holds rank 0's only), so no two processes train on the same crops."""
    from progcodec.train.data import RandomCrops, find_images
    from progcodec.train.loop import resume_random_streams

    files = find_images([str(photo_dir)])
    saver = RandomCrops(files, 32, seed=5)
    saver.batch(3)
    ckpt = {"data_rng": saver.rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": 7}
    expected = RandomCrops(files, 32, seed=5)
    expected.rng.bit_generator.state = ckpt["data_rng"]
    batches = []
    for rank in (0, 1, 2):
        data = RandomCrops(files, 32, seed=99)
        resume_random_streams(ckpt, data, rank, seed=5)
        batches.append((data.batch(4), torch.rand(8)))
    torch.testing.assert_close(batches[0][0], expected.batch(4))
    torch.set_rng_state(ckpt["torch_rng"])
    torch.testing.assert_close(batches[0][1], torch.rand(8))
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not torch.equal(batches[a][0], batches[b][0])
        assert not torch.equal(batches[a][1], batches[b][1])


def test_init_from_exported_weights_counts_cumulative_steps(photo_dir, tmp_path):
    first = _config(photo_dir, tmp_path / "a", steps=2)
    train(first)
    second = _config(photo_dir, tmp_path / "b", steps=3, init=first.out)
    manifest = train(second)
    assert manifest["training"]["cumulative_steps"] == 5
    assert manifest["training"]["init_from"] == first.out


def test_sigterm_checkpoints_before_exit(photo_dir, tmp_path):
    """A killed run loses nothing: SIGTERM writes a checkpoint that --resume continues from."""
    import signal

    out = tmp_path / "vam.safetensors"
    script = (
        "import sys\n"
        "from progcodec.train.loop import TrainConfig, train\n"
        f"cfg = TrainConfig(data=[{str(photo_dir)!r}], out={str(out)!r}, steps=100000, batch=2, crop=64,\n"
        f"                  checkpoint_every=100000, val_every=100000, threads=1, model_args={TINY!r})\n"
        "train(cfg, on_event=lambda k, i: k == 'step' and print(i['step'], flush=True))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if int(line) >= 3:
                break
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    ckpt = torch.load(out.with_suffix(".ckpt"), weights_only=False)
    assert ckpt["step"] >= 3
    assert not out.exists()  # no half-trained export


def _held_out_name(suffix: str) -> str:
    """A file name that the 1-in-50 hold-out sets aside."""
    return next(f"photo{k}{suffix}" for k in range(10_000) if not split_holdout([Path(f"photo{k}{suffix}")])[0])


def test_pack_crops_keeps_the_held_out_images_apart(photo_dir, tmp_path):
    from click.testing import CliRunner

    from progcodec.cli import main

    source = tmp_path / "source"
    source.mkdir()
    for f in photo_dir.iterdir():
        (source / f.name).write_bytes(f.read_bytes())
    held = np.asarray(Image.open(photo_dir / "chelsea.png").convert("RGB"))
    Image.fromarray(held).save(source / _held_out_name(".png"))

    packed = tmp_path / "packed"
    result = CliRunner().invoke(main, ["pack-crops", str(source), "-o", str(packed), "--crop", "64",
                                       "--per-image", "2"])
    assert result.exit_code == 0, result.output
    train_crops = sorted((packed / "train").iterdir())
    val_crops = sorted((packed / "val").iterdir())
    assert len(train_crops) == 2 * 6 and len(val_crops) == 1
    assert all(Image.open(p).size == (64, 64) and Image.open(p).mode == "RGB" for p in train_crops)
    top, left = (120 - 64) // 2, (160 - 64) // 2
    assert np.array_equal(np.asarray(Image.open(val_crops[0])), held[top:top + 64, left:left + 64])

    again = CliRunner().invoke(main, ["pack-crops", str(source), "-o", str(packed)])
    assert again.exit_code == 1 and "not empty" in again.output

    # The pack trains as it is, validating on its own held-out crops, which never enter training.
    events = []
    cfg = _config(packed, tmp_path, steps=2, val=str(packed / "val"), val_crop=64)
    train(cfg, on_event=lambda kind, info: events.append((kind, info)))
    assert [info["step"] for kind, info in events if kind == "val"] == [2]
    assert [info["total"] for kind, info in events if kind == "load"][-1] == 12


def test_max_minutes_stops_with_a_checkpoint_and_an_export(photo_dir, tmp_path):
    cfg = _config(photo_dir, tmp_path, steps=1000, max_minutes=1e-6)
    manifest = train(cfg)
    stopped_at = manifest["training"]["steps"]
    assert stopped_at < 1000 and load_model(cfg.out).manifest["sha256"] == manifest["sha256"]
    ckpt = torch.load(cfg.checkpoint_path, weights_only=False)
    assert ckpt["step"] == stopped_at
    steps_seen = []
    train(_config(photo_dir, tmp_path, steps=stopped_at + 2, resume=str(cfg.checkpoint_path)),
          on_event=lambda kind, info: kind == "step" and steps_seen.append(info["step"]))
    assert steps_seen == [stopped_at + 1, stopped_at + 2]


# -- CPU throughput: bf16 transforms, float32 where it matters -------------------------------------------------


@pytest.mark.parametrize("model_name", ["vam", "progdtd"])
def test_bf16_autocast_runs_the_convolutions_in_bf16_and_keeps_gdn_and_the_loss_float32(model_name):
    from compressai.layers import GDN

    from progcodec.models import MODELS

    torch.manual_seed(0)
    model = MODELS[model_name](**TINY, **({"lambda_preview": 1e-4} if model_name == "vam" else {}))
    model.transform_dtype = torch.bfloat16
    seen = {"gdn": set(), "conv": set()}
    for module in model.g_a.modules():
        if isinstance(module, GDN):
            module.register_forward_hook(lambda m, i, o: seen["gdn"].add(o.dtype))
        elif isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, o: seen["conv"].add(o.dtype))
    out = model(torch.rand(2, 3, 64, 64))
    assert seen["conv"] == {torch.bfloat16} and seen["gdn"] == {torch.float32}
    for key in ("loss", "bpp_full", "mse_q"):
        assert out[key].dtype == torch.float32, key
    out["loss"].backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())     # weights stay float32
    model.transform_dtype = None
    seen["conv"].clear()
    model(torch.rand(2, 3, 64, 64))
    assert seen["conv"] == {torch.float32}


def test_precision_choice(monkeypatch):
    import warnings

    from progcodec import precision
    from progcodec.precision import transform_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(precision, "bf16_supported", lambda: native)
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # fp32, auto and native bf16 say nothing
            assert transform_dtype("fp32", cpu) is None
            assert transform_dtype("auto", cpu) == (torch.bfloat16 if native else None)
            assert transform_dtype("auto", cuda) is None
            if native:
                assert transform_dtype("bf16", cpu) == torch.bfloat16
    # asked for on a CPU that would emulate it: still bf16, with a warning that says why it is slow
    with pytest.warns(UserWarning, match="emulated"):
        assert transform_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError):
        transform_dtype("fp16", cpu)


def test_fp32_and_bf16_training_both_learn(photo_dir, tmp_path):
    """Same seed, same crops: bf16 loses no more than a little against float32 after 30 steps."""
    final = {}
    for precision in ("fp32", "bf16"):
        losses = []
        manifest = train(_config(photo_dir, tmp_path / precision, steps=30, lr=2e-3, warmup=5, precision=precision),
                         on_event=lambda kind, info: kind == "step" and losses.append(info["loss"]))
        final[precision] = np.mean(losses[-6:])
        assert final[precision] < 0.7 * np.mean(losses[:6])
        assert manifest["training"]["precision"] == {"fp32": "float32", "bf16": "bfloat16"}[precision]
    assert final["bf16"] < 1.15 * final["fp32"]


def test_the_learning_rate_drops_on_the_clock_when_max_minutes_ends_the_run():
    from progcodec.train.loop import learning_rate

    cfg = TrainConfig(data=[], steps=100_000, lr=1e-3, warmup=10, max_minutes=10)
    assert learning_rate(cfg, 5, 0.1) == pytest.approx(6e-4)
    assert learning_rate(cfg, 1000, 8.0) == 1e-3
    assert learning_rate(cfg, 1000, 8.6) == pytest.approx(1e-4)
    assert learning_rate(TrainConfig(data=[], steps=100, lr=1e-3, warmup=0), 90, 0.0) == pytest.approx(1e-4)


def test_the_preview_point_is_priced_only_when_asked():
    from progcodec.models import MODELS

    x = torch.rand(4, 3, 64, 64)
    torch.manual_seed(0)
    plain = MODELS["vam"](**TINY)
    torch.manual_seed(0)
    preview = MODELS["vam"](**TINY, lambda_preview=1e-3)
    torch.manual_seed(1)
    a = plain(x)
    torch.manual_seed(1)
    b = preview(x)
    assert float(a["mse_preview"]) == 0.0 and float(b["mse_preview"]) > 0
    expected = float(a["loss"].detach()) + 255**2 * 1e-3 * float(b["mse_preview"])
    assert float(b["loss"].detach()) == pytest.approx(expected, rel=1e-5)
    assert preview.config()["lambda_preview"] == 1e-3


def test_rem_stage_trains_only_the_rems_and_lowers_the_residual_rate(photo_dir, tmp_path):
    """--stage rem: the backbone and hyperprior of --init stay bit for bit; the REMs' rate
    loss falls; the manifest says so; the exported weights carry REMs and encode with them."""
    from safetensors.torch import load_file

    import progcodec
    from progcodec import container

    # float32 on every CPU: bf16 kernels differ between CPUs, and this tiny backbone's residual is small
    base = _config(photo_dir, tmp_path / "a", steps=30, lr=2e-3, warmup=2, precision="fp32")
    train(base)
    losses = []
    rem = _config(photo_dir, tmp_path / "b", steps=40, lr=3e-3, warmup=2, init=base.out, stage="rem",
                  rem_shares=(0.1,), precision="fp32")
    manifest = train(rem, on_event=lambda kind, info: kind == "step" and losses.append(info["loss"]))
    assert manifest["training"]["stage"] == "rem" and manifest["training"]["rem_shares"] == [0.1]
    assert len(losses) == 40
    # on fixed images (the step losses of random crops are too noisy to compare): the residual
    # after the REM point costs fewer bits with the trained REM than with the hyperprior's parameters
    from progcodec.image import to_tensor
    from progcodec.weights import load_model

    trained = load_model(rem.out).eval()
    trained.training_stage = "rem"
    crops = torch.stack([to_tensor(Image.open(photo_dir / f"{n}.png").convert("RGB").crop((0, 0, 128, 64)))[0]
                         for n in ("astronaut", "coffee", "chelsea")])
    with torch.no_grad():
        rates = trained.forward_rem(crops)
    assert float(rates["bpp_full"]) < float(rates["bpp_base"])
    before, after = load_file(base.out), load_file(rem.out)
    assert set(after) - set(before) and all(k.startswith("residual.rems.") for k in set(after) - set(before))
    assert all(torch.equal(before[k], after[k]) for k in before)
    data = progcodec.encode(Image.open(photo_dir / "astronaut.png"), model=rem.out, ladder=6)
    assert container.parse(data).header.rem
    assert progcodec.decode(data, model=rem.out).size == (160, 120)
    # training the backbone from them again leaves the REMs behind: they would be stale
    backbone = _config(photo_dir, tmp_path / "e", steps=2, init=rem.out)
    train(backbone)
    assert set(load_file(backbone.out)) == set(before)
    with pytest.raises(ValueError, match="--init"):
        train(_config(photo_dir, tmp_path / "c", stage="rem"))
    with pytest.raises(ValueError, match="REM loss"):
        train(_config(photo_dir, tmp_path / "f", stage="rem", init=base.out, rem_loss="mse"))
    with pytest.raises(ValueError, match="vam"):
        train(_config(photo_dir, tmp_path / "d", model="progdtd", stage="rem", init=base.out))


def test_rem_cache_trains_the_rems_on_the_frozen_backbones_statistics(photo_dir, tmp_path):
    """--rem-cache N: the backbone's statistics of N crops are computed once. The REM loss of
    a batch of statistics is the loss of the images they came from; cached batches are cached
    crops, some flipped; training from the cache lowers the loss and leaves the backbone as it was."""
    from safetensors.torch import load_file

    from progcodec.train.data import RandomCrops, find_images
    from progcodec.train.rem_cache import RemStatisticsCache
    from progcodec.weights import load_model

    base = _config(photo_dir, tmp_path / "a", steps=20, lr=2e-3, warmup=2)
    train(base)
    losses = []
    rem = _config(photo_dir, tmp_path / "b", steps=40, lr=3e-3, warmup=2, init=base.out, stage="rem",
                  rem_shares=(0.1, 0.4), rem_cache=6)
    manifest = train(rem, on_event=lambda kind, info: kind == "step" and losses.append(info["loss"]))
    assert manifest["training"]["rem_cache"] == 6 and manifest["training"]["stage"] == "rem"
    assert np.mean(losses[-8:]) < np.mean(losses[:8])
    before, after = load_file(base.out), load_file(rem.out)
    assert all(torch.equal(before[k], after[k]) for k in before)

    model = load_model(rem.out).eval()
    model.training_stage = "rem"
    crops = RandomCrops(find_images([photo_dir]), 64, seed=3)
    x = crops.batch(3)
    from_images, from_stats = model(x), model(model.rem_statistics(x))
    assert float(from_stats["bpp_base"]) > 0
    for key in ("loss", "bpp_base", "bpp_full"):
        assert torch.equal(from_images[key], from_stats[key])
    cache = RemStatisticsCache(model, crops, 5, batch=2, seed=1)
    assert len(cache) == 5 and cache.tensors["residual"].shape[1:] == (model.M, 4, 4)
    drawn = cache.batch(16)["residual"]
    kept = cache.tensors["residual"]
    variants = [kept, kept.flip(-1), kept.flip(-2), kept.flip(-1).flip(-2)]
    assert all(any(torch.equal(d, v[i]) for v in variants for i in range(5)) for d in drawn)
    assert any(not any(torch.equal(d, kept[i]) for i in range(5)) for d in drawn)    # some are flipped
    with pytest.raises(ValueError, match="rate loss"):
        train(_config(photo_dir, tmp_path / "c", stage="rem", init=base.out, rem_loss="rd", rem_cache=4))
    with pytest.raises(ValueError, match="--stage rem"):
        train(_config(photo_dir, tmp_path / "d", rem_cache=4))


def test_rem_rd_loss_improves_the_mean_fill_of_a_later_layer(photo_dir, tmp_path):
    """--rem-loss rd: the REMs also learn the mean fill of a layer past their point, through the
    frozen synthesis; on fixed images (eval: fixed layer shares) the RD loss falls below that of
    the untrained REMs (the identity); validation reports that layer's PSNR; the backbone stays."""
    from safetensors.torch import load_file

    from progcodec.train.data import center_crops
    from progcodec.weights import load_model

    base = _config(photo_dir, tmp_path / "a", steps=30, lr=2e-3, warmup=2)
    train(base)
    val_dir = tmp_path / "val"
    val_dir.mkdir()
    Image.open(photo_dir / "coffee.png").save(val_dir / "coffee.png")
    vals = []
    rem = _config(photo_dir, tmp_path / "b", steps=60, lr=1e-3, warmup=2, init=base.out, stage="rem",
                  rem_shares=(0.1, 0.4), rem_loss="rd", val_every=30, val=str(val_dir), val_crop=64)
    manifest = train(rem, on_event=lambda kind, info: kind == "val" and vals.append(info))
    assert manifest["training"]["rem_loss"] == "rd"
    assert vals and all(10 < v["rem_psnr"] < 60 for v in vals)
    before, after = load_file(base.out), load_file(rem.out)
    assert all(torch.equal(before[k], after[k]) for k in before)

    images = center_crops(sorted(photo_dir.glob("*.png")), 64)
    losses = []
    for state in (after | {k: torch.zeros_like(v) for k, v in after.items()
                           if k.startswith("residual.rems.") and k.endswith((".4.weight", ".4.bias"))}, after):
        model = load_model(rem.out).eval()
        model.load_state_dict(state)
        model.training_stage, model.rem_loss = "rem", "rd"
        with torch.no_grad():
            losses.append(float(model(images)["loss"]))
    assert losses[1] < losses[0], losses


def test_ema_exports_the_average_and_leaves_the_training_alone(photo_dir, tmp_path):
    """With --ema d the export is w0 + (1 - d)·(w1 - w0) after one step from w0; the steps
    themselves are those of a run without it; a resumed run carries the average on exactly."""
    from safetensors.torch import load_file

    start = _config(photo_dir, tmp_path / "start", steps=2, precision="fp32")
    train(start)
    w0 = load_file(start.out)
    live = _config(photo_dir, tmp_path / "live", steps=1, init=start.out, precision="fp32")
    train(live)
    averaged = _config(photo_dir, tmp_path / "avg", steps=1, init=start.out, precision="fp32", ema=0.75)
    manifest = train(averaged)
    assert manifest["training"]["weight_average"]["decay"] == 0.75
    assert manifest["training"]["weight_average"]["from_step"] == 0
    w1 = torch.load(averaged.checkpoint_path, weights_only=False)["model"]
    trained_alone = load_file(live.out)
    exported = load_file(averaged.out)
    names = [n for n, p in load_model(averaged.out).named_parameters() if not n.endswith("quantiles")]
    moved = 0
    for name in names:
        assert torch.equal(w1[name], trained_alone[name]), name          # the same steps
        assert torch.allclose(exported[name], w0[name] + 0.25 * (w1[name] - w0[name]), rtol=0, atol=1e-6), name
        moved += not torch.equal(w1[name], w0[name])
    assert moved > len(names) // 2

    straight = _config(photo_dir, tmp_path / "straight", steps=3, init=start.out, precision="fp32", ema=0.75)
    train(straight)
    first = _config(photo_dir, tmp_path / "resumed", steps=1, init=start.out, precision="fp32", ema=0.75)
    train(first)
    resumed = _config(photo_dir, tmp_path / "resumed", steps=3, resume=str(first.checkpoint_path),
                      precision="fp32", ema=0.75)
    train(resumed)
    a, b = load_file(straight.out), load_file(resumed.out)
    assert all(torch.equal(a[k], b[k]) for k in names)
