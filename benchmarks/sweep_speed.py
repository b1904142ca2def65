"""How much faster is `sgd_noise.sweeps.sweeping` than the loop a user would write?

One workload, both ways, in one process: N learning rates x the course MLP (40-256-256-10) on MNIST-1D
(4000 training examples), plain SGD at a constant learning rate, for a few epochs.
  (a) what a user writes: DataLoader + nn.Module + torch.optim.SGD, one model after another;
  (b) the same runs through sgd_noise.sweeps.sweeping (one vectorised ensemble).
It prints both wall times, the GFLOP/s each achieves (6 x batch x weights per model-step: forward, and the
backward's weight and input gradients), this machine's fp32 matrix-multiply peak as torch measures it, the
final test accuracies of both (they train the same models, so they should agree closely), and as its
last line `speedup: <time of a / time of b>`.

    python benchmarks/sweep_speed.py                      # the reference workload: 16 LRs, B=32, 3 epochs
    python benchmarks/sweep_speed.py --batch-size 256 --models 64 --device cuda
"""
import argparse, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from sgd_noise.core.data import load_dataset
from sgd_noise import grid, sweep, TrainConfig


def matmul_peak(device, n=1024, reps=20):
    "fp32 GFLOP/s of one n x n matrix product, best of `reps`."
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = math.inf
    for _ in range(reps):
        if device.type == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter(); a @ b
        if device.type == 'cuda': torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def user_loop(data, lrs, batch_size, epochs, device, hidden=(256, 256)):
    "The plain PyTorch a user would write: DataLoader, nn.Module, optim.SGD, one model after another."
    loader = DataLoader(TensorDataset(data.x_train.cpu(), data.y_train.cpu()), batch_size=batch_size, shuffle=True, drop_last=True)
    accs = []
    for i, lr in enumerate(lrs):
        torch.manual_seed(i)
        sizes = (data.x_train.shape[1], *hidden)
        layers = []
        for a, b in zip(sizes, sizes[1:]): layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(sizes[-1], data.n_classes)).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        for _ in range(epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():  # the final evaluation the sweep records too: loss and accuracy, train and test sets
            for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
                out = model(x.to(device)); y = y.to(device)
                F.cross_entropy(out, y).item(); acc = (out.argmax(1) == y).float().mean().item()
        accs.append(acc)
    return accs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models', type=int, default=16, help='learning rates trained (one model each)')
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--device', default='cpu')
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    data = load_dataset('mnist1d', device=device)
    lrs = [0.005 * (40 ** (k / max(1, args.models - 1))) for k in range(args.models)]  # 0.005 ... 0.2: none diverges
    weights = sum(a * b for a, b in zip((40, 256, 256), (256, 256, 10)))
    model_steps = args.models * args.epochs * (data.n_train // args.batch_size)
    flops = 6 * args.batch_size * weights * model_steps
    peak = max(matmul_peak(device, n) for n in (512, 1024, 2048))  # the best of three sizes: a stable, generous peak

    base = TrainConfig(dataset='mnist1d', model='mlp', batch_size=args.batch_size, epochs=args.epochs, schedule='constant',
                       n_evals=0, device=str(device))
    # warm-up, untimed: first calls pay for lazy initialisation (kernels, allocator, the dataset cache) in both paths
    user_loop(data, lrs[:1], args.batch_size, 1, device); sweep(grid(base.replace(epochs=1), lr=lrs[:2]), progress=False)
    t = time.perf_counter()
    df = sweep(grid(base, lr=lrs), progress=False)
    tb = time.perf_counter() - t
    t = time.perf_counter(); acc_a = user_loop(data, lrs, args.batch_size, args.epochs, device); ta = time.perf_counter() - t

    print(f'workload: {args.models} x MLP 40-256-256-10, MNIST-1D {data.n_train} examples, batch {args.batch_size}, '
          f'{args.epochs} epochs = {model_steps} model-steps on {device} ({torch.get_num_threads()} threads)')
    print(f'matmul peak (fp32, best of 512^2, 1024^2, 2048^2): {peak:.0f} GFLOP/s')
    print(f'(a) DataLoader + nn.Module + optim.SGD, one model at a time: {ta:.2f} s, {flops / ta / 1e9:.1f} GFLOP/s, '
          f'mean test acc {sum(acc_a) / len(acc_a):.3f}')
    print(f'(b) sgd_noise.sweeps.sweeping (engine {df.engine.iloc[0]}): {tb:.2f} s, {flops / tb / 1e9:.1f} GFLOP/s, '
          f'mean test acc {df.test_acc.mean():.3f}')
    # the ceiling: the multiply-adds that any engine must do (no input gradient for the first layer; the final
    # evaluation on the train and test sets) at this machine's matmul peak, with nothing else costing any time
    needed = (flops - 2 * args.batch_size * 40 * 256 * model_steps
              + 2 * args.models * (data.n_train + data.n_test) * weights)
    t_floor = needed / peak / 1e9
    print(f'(b) runs at {flops / tb / 1e9 / peak:.0%} of the matmul peak; at 100% it would take {t_floor:.2f} s, '
          f'so no fp32 engine can beat (a) by more than {ta / t_floor:.1f}x on this machine')
    print(f'speedup: {ta / tb:.1f}')


if __name__ == '__main__':
    main()
