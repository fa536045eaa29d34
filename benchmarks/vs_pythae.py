"""Our AE-MMD against pythae's WAE-MMD (clementchadebec/benchmark_VAE) on the CPU: steps/s and final MMD.

Same network (our conv encoder/decoder, with the same initial weights in both), same data, batch size, latent
size, penalty weight (0.3) and reconstruction term (squared error summed over pixels, mean over the batch: both
libraries use it), both with Adam at lr 5e-4 and a standard Gaussian prior. Each keeps its own MMD: ours the RBF
sum with the median-heuristic bandwidth (V-statistic), pythae's its default multi-scale IMQ kernel with a fixed
bandwidth (U-statistic). ``pip install -e '.[bench]'`` installs pythae.

Timing: one training step = batch, forward, loss, backward, Adam step; ours is the real `Trainer.train_step`
(batch indexed from the resident uint8 dataset, finiteness checks included), pythae's is its model's ``forward``
and ``loss`` in a plain loop over batches indexed from an in-memory float tensor (no DataLoader: that favours
pythae). The two alternate in rounds in one process, so machine load hits both alike; the table gives the median
steps/s over rounds and our ratio to pythae, measured in the same run. After the timed steps, both models'
codes of the whole dataset are compared to a prior sample with one MMD^2 (ours, RBF, median bandwidth).

    python benchmarks/vs_pythae.py            # xy (32x32), d = 8, batch 128, 6 rounds x 25 steps
    python benchmarks/vs_pythae.py --smoke    # seconds
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from explorer.data import load_dataset
from explorer.mmd import mmd2
from explorer.training import TrainConfig, Trainer


def pythae_wae_mmd(trainer: Trainer, reg_weight: float, kernel: str) -> nn.Module:
    """pythae's WAE_MMD around copies of the trainer's encoder and decoder (same initial weights)."""
    try:
        from pythae.models import WAE_MMD, WAE_MMD_Config
    except ImportError as err:
        raise SystemExit(f"this benchmark needs pythae ({err}): pip install -e '.[bench]'") from err
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = copy.deepcopy(trainer.model.encoder)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            return ModelOutput(embedding=self.net(x))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = copy.deepcopy(trainer.model.decoder)

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z))

    config = WAE_MMD_Config(input_dim=tuple(trainer.dataset.shape), latent_dim=trainer.config.latent_dim,
                            reg_weight=reg_weight, kernel_choice=kernel)
    return WAE_MMD(config, encoder=Encoder(), decoder=Decoder())


class PythaeStep:
    """pythae's training step on batches indexed from the dataset held as one float tensor."""

    def __init__(self, model: nn.Module, images: torch.Tensor, batch_size: int, lr: float, seed: int) -> None:
        self.model, self.images, self.batch_size = model, images, batch_size
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self) -> dict[str, float]:
        self.model.train()
        x = self.images[torch.randint(len(self.images), (self.batch_size,), generator=self.generator)]
        out = self.model({"data": x})
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        return {"loss": out.loss.item(), "recon": out.recon_loss.item(), "mmd": out.mmd_loss.item()}


@torch.no_grad()
def final_scores(encode, decode, images: torch.Tensor, latent_dim: int) -> tuple[float, float]:
    """(MMD^2 of all codes to an N(0, I) sample, mean summed squared reconstruction error), one metric for both."""
    codes = torch.cat([encode(chunk) for chunk in images.split(1024)])
    recon = torch.cat([(decode(c) - x).square().flatten(1).sum(1) for c, x in
                       zip(codes.split(1024), images.split(1024), strict=True)])
    prior = torch.randn(len(codes), latent_dim, generator=torch.Generator().manual_seed(123))
    return float(mmd2(codes, prior)), float(recon.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="xy")
    parser.add_argument("--n", type=int, default=4096, help="dataset size (procedural datasets)")
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds (median reported)")
    parser.add_argument("--steps", type=int, default=25, help="steps per library per round")
    parser.add_argument("--lam", type=float, default=0.3, help="penalty weight of both")
    parser.add_argument("--pythae-kernel", choices=("imq", "rbf"), default="imq", help="pythae's kernel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script works")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.rounds, args.steps, args.batch_size, args.width = 256, 2, 2, 32, 8

    dataset = load_dataset(args.dataset, n=args.n)
    config = TrainConfig(dataset=args.dataset, dataset_options={"n": args.n}, objective="mmd",
                         objective_options={"lam": args.lam}, latent_dim=args.latent_dim, width=args.width,
                         batch_size=args.batch_size, seed=args.seed, steps=10**9)
    ours = Trainer(config, dataset=dataset)
    images = dataset.items(torch.arange(len(dataset))).float() / 255
    wae = pythae_wae_mmd(ours, args.lam, args.pythae_kernel)
    theirs = PythaeStep(wae, images, args.batch_size, config.lr, args.seed)
    steps = {"ours (AE-MMD)": ours.train_step, "pythae WAE_MMD": theirs}

    for step in steps.values():
        step()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in steps}
    last: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                last[name] = step()
            rates[name].append(args.steps / (time.perf_counter() - start))

    ours.model.eval()
    wae.eval()
    scores = {
        "ours (AE-MMD)": final_scores(ours.model.encode, ours.model.decode, images, args.latent_dim),
        "pythae WAE_MMD": final_scores(lambda x: wae.encoder(x).embedding,
                                       lambda z: wae.decoder(z)["reconstruction"], images, args.latent_dim),
    }
    reference = statistics.median(rates["pythae WAE_MMD"])
    total = 1 + args.rounds * args.steps
    print(f"{args.dataset} n={args.n} {tuple(dataset.shape)}, d = {args.latent_dim}, batch {args.batch_size}, "
          f"width {args.width}, lam {args.lam}, pythae kernel {args.pythae_kernel}, {torch.get_num_threads()} "
          f"threads; median of {args.rounds} rounds x {args.steps} steps; scores after {total} steps")
    print(f"{'library':<16} {'steps/s':>8} {'vs pythae':>10} {'ms/step':>8} {'final MMD^2':>12} {'recon':>8}")
    for name, rate in rates.items():
        median = statistics.median(rate)
        mmd, recon = scores[name]
        print(f"{name:<16} {median:>8.2f} {median / reference:>10.2f} {1000 / median:>8.1f} {mmd:>12.4f} "
              f"{recon:>8.2f}")


if __name__ == "__main__":
    main()
