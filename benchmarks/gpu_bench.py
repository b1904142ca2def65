"""Speed on one GPU, each against the plain PyTorch loop a user would write, in the same process.

(a) sweep engine vs plain loop: 16 learning rates of one model trained for a fixed number of steps, momentum 0.9
    and L2 5e-4, at B = 16, 128, 1024, for the course MLP (40-256-256-10) and for the `gpu` presets' conv net (a
    5-layer 1-D conv net with ghost batch norm), on MNIST-1D (16,000 examples). The plain loop is the one a user
    writes on a GPU: data already on the device, a random permutation per epoch, nn.Module + optim.SGD, one
    model after another. The sweep is `sgd_noise.sweeps.sweeping.sweep` (one `vmap`/`mlp` ensemble).
(b) one WRN-16-4 epoch (50,000 32x32 images, B=512, crop+flip augmentation, bf16 autocast, channels_last) through
    `sgd_noise.core.training.train`, against an airbench-style reference loop written here (data on the GPU, no
    DataLoader, the same augmentation, model and optimiser); and `train` with torch.compile (its compile time
    counted in the first epoch, reported separately from a second, warm, run). Both end with the same
    evaluation on the training and test sets. The images are random (the GPU machine has no network, so no
    CIFAR-10): speed does not depend on the pixel values.
(c) the TFLOP/s each achieves: FLOPs counted by torch.utils.flop_counter on one training step, against this
    device's bf16 matrix-product rate measured here (8192^3, median of 10).

    python benchmarks/gpu_bench.py --device cuda --out results/gpu/bench.json
    python benchmarks/gpu_bench.py --device cpu --tiny      # the plumbing, on a CPU
"""
import argparse, json, math, statistics, sys, time

import torch
import torch.nn.functional as F

from sgd_noise.claims.contract import GPU_SCALE
from sgd_noise.core.data import Dataset, load_dataset
from sgd_noise import make_model, grid, sweep
from sgd_noise.core.training import AUGMENT
from sgd_noise import TrainConfig, evaluate, train


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def timed(fn, dev):
    sync(dev); t = time.perf_counter(); out = fn(); sync(dev)
    return time.perf_counter() - t, out


def plain_loop(data, model_name, model_kwargs, lrs, batch_size, steps, dev):
    "What a user writes on a GPU: data on the device, a permutation per epoch, nn.Module + optim.SGD, one model at a time."
    for i, lr in enumerate(lrs):
        model = make_model(model_name, input_shape=data.input_shape, n_classes=data.n_classes, seed=i,
                           **model_kwargs).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        g = torch.Generator(device=dev).manual_seed(i)
        perm, pos = torch.randperm(data.n_train, device=dev, generator=g), 0
        for _ in range(steps):
            if pos + batch_size > data.n_train:
                perm, pos = torch.randperm(data.n_train, device=dev, generator=g), 0
            idx = perm[pos:pos + batch_size]; pos += batch_size
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        evaluate(model, data.x_train, data.y_train); evaluate(model, data.x_test, data.y_test)


def bench_engine(data, dev, steps, batch_sizes, n_models=16):
    rows = []
    lrs = [0.005 * 40 ** (k / (n_models - 1)) for k in range(n_models)]
    nets = {'mlp': ('mlp', {}), 'cnn': (GPU_SCALE['model'], GPU_SCALE['model_kwargs'])}
    for net, (name, kw) in nets.items():
        for b in batch_sizes:
            base = TrainConfig(dataset='mnist1d', model=name, model_kwargs=kw, batch_size=b, steps=steps, n_evals=0,
                               momentum=0.9, weight_decay=5e-4, schedule='constant', device=str(dev),
                               n_train=data.n_train, n_test=data.n_test)
            cfgs = grid(base, lr=lrs)
            sweep(grid(base.replace(steps=3), lr=lrs[:2]), progress=False)          # warm-up, untimed
            plain_loop(data, name, kw, lrs[:1], b, 3, dev)
            ts, df = timed(lambda: sweep(cfgs, progress=False), dev)
            tp, _ = timed(lambda: plain_loop(data, name, kw, lrs, b, steps, dev), dev)
            rows.append(dict(model=net, batch_size=b, models=n_models, steps=steps, engine=df.engine.iloc[0],
                             plain_s=tp, sweep_s=ts, speedup=tp / ts))
            print(f"(a) {net:4s} B={b:5d}: plain loop {tp:7.2f} s, sweep ({df.engine.iloc[0]}) {ts:6.2f} s, "
                  f"{tp / ts:5.1f}x", flush=True)
    return rows


def matmul_peak(dev, n=8192, reps=10):
    "Median bf16 TFLOP/s of an n^3 matrix product (random data)."
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16); b = torch.randn_like(a)
    for _ in range(3): a @ b
    ts = [timed(lambda: a @ b, dev)[0] for _ in range(reps)]
    return 2 * n ** 3 / statistics.median(ts) / 1e12


def step_flops(model, x, y):
    "FLOPs of one training step (forward and backward), as torch.utils.flop_counter counts them."
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()


def reference_epoch(data, cfg, dev):
    "An airbench-style loop: data on the GPU, no DataLoader, bf16 autocast, channels_last, the same augmentation."
    model = make_model('wrn', input_shape=data.input_shape, n_classes=10, seed=0, **cfg.model_kwargs).to(dev)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4, nesterov=False)
    gen = torch.Generator(device=dev).manual_seed(1)
    perm = torch.randperm(data.n_train, device=dev, generator=gen)
    model.train()
    for k in range(0, data.n_train - cfg.batch_size + 1, cfg.batch_size):
        idx = perm[k:k + cfg.batch_size]
        xb = AUGMENT['crop-flip'](data.x_train[idx], gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(xb), data.y_train[idx])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    evaluate(model, data.x_train, data.y_train); evaluate(model, data.x_test, data.y_test)


def bench_wrn(dev, n_train, n_test, batch_size, with_compile, width=4):
    g = torch.Generator().manual_seed(0)
    data = Dataset('cifar10', torch.randn(n_train, 3, 32, 32, generator=g), torch.randint(0, 10, (n_train,), generator=g),
                   torch.randn(n_test, 3, 32, 32, generator=g), torch.randint(0, 10, (n_test,), generator=g), 10).to(dev)
    cfg = TrainConfig(dataset='cifar10', model='wrn', model_kwargs={'depth': 16, 'width': width}, batch_size=batch_size,
                      epochs=1, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule='constant', n_evals=0,
                      device=str(dev), precision='bf16', channels_last=True, augment='crop-flip')
    steps = cfg.total_steps(n_train)
    model = make_model('wrn', input_shape=(3, 32, 32), n_classes=10, **cfg.model_kwargs).to(dev).to(memory_format=torch.channels_last)
    xb = torch.randn(batch_size, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    flops = step_flops(model, xb, torch.randint(0, 10, (batch_size,), device=dev))
    eval_flops = flops / 3 * (n_train + n_test) / batch_size          # forward only, every example once
    total_flops = flops * steps + eval_flops
    reference_epoch(data, cfg.replace(), dev)                          # warm-up (cuDNN autotuning, allocator)
    tr, _ = timed(lambda: reference_epoch(data, cfg, dev), dev)
    tt, _ = timed(lambda: train(cfg, data=data, progress=False), dev)
    rows = [dict(what='reference loop (airbench-style)', seconds=tr), dict(what='sgd_noise.core.training', seconds=tt)]
    if with_compile:
        c = cfg.replace(compile=True)
        t1, _ = timed(lambda: train(c, data=data, progress=False), dev)
        t2, _ = timed(lambda: train(c, data=data, progress=False), dev)
        rows += [dict(what='sgd_noise.core.training, compile (first run: compiles)', seconds=t1),
                 dict(what='sgd_noise.core.training, compile (second run)', seconds=t2)]
    for r in rows:
        r.update(ratio_to_reference=r['seconds'] / tr, tflops=total_flops / r['seconds'] / 1e12)
        print(f"(b) WRN-16-{width} epoch, {r['what']}: {r['seconds']:.2f} s, {r['ratio_to_reference']:.2f}x the "
              f"reference, {r['tflops']:.1f} TFLOP/s", flush=True)
    return dict(rows=rows, steps=steps, batch_size=batch_size, n_train=n_train, step_flops=flops, total_flops=total_flops)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--out', help='write the numbers (JSON) here')
    ap.add_argument('--part', default='ab', help="'a' (engine), 'b' (WRN epoch), or 'ab'")
    ap.add_argument('--no-compile', action='store_true', help='skip the torch.compile runs of (b)')
    ap.add_argument('--tiny', action='store_true', help='tiny shapes: check the plumbing on a CPU')
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    out = dict(device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu', torch=torch.__version__)
    if a.out:
        try: out = {**json.load(open(a.out)), **out}   # resume: keep the parts already measured
        except (OSError, ValueError): pass
    def save():
        if a.out: json.dump(out, open(a.out, 'w'), indent=1)
    if 'a' in a.part:
        n = (1000, 200) if a.tiny else (16000, 4000)
        data = load_dataset('mnist1d', n_train=n[0], n_test=n[1], device=dev)
        out['engine'] = bench_engine(data, dev, steps=5 if a.tiny else 200, batch_sizes=(16, 128) if a.tiny else (16, 128, 1024),
                                     n_models=4 if a.tiny else 16)
        save()
    if 'b' in a.part:
        if dev.type == 'cuda': out['bf16_matmul_tflops'] = matmul_peak(dev)
        kw = dict(n_train=256, n_test=64, batch_size=64, width=1) if a.tiny else dict(n_train=50000, n_test=10000, batch_size=512)
        out['wrn_epoch'] = bench_wrn(dev, with_compile=not a.no_compile, **kw)
        if 'bf16_matmul_tflops' in out:
            for r in out['wrn_epoch']['rows']: r['fraction_of_peak'] = r['tflops'] / out['bf16_matmul_tflops']
            print(f"(c) bf16 matrix-product peak measured here: {out['bf16_matmul_tflops']:.0f} TFLOP/s; the reference "
                  f"reaches {out['wrn_epoch']['rows'][0]['fraction_of_peak']:.1%} of it, train "
                  f"{out['wrn_epoch']['rows'][1]['fraction_of_peak']:.1%}")
        save()
    return 0


if __name__ == '__main__':
    sys.exit(main())
