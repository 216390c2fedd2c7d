"""Scaling sweep: train a grid of model sizes and token counts (or IsoFLOP budgets) with the real
pretraining script, then fit scaling laws to the results and plot them.

    python pretrain/scaling_sweep.py --config configs/scaling_toy_cpu.yaml                # 2 CPU cores
    python pretrain/scaling_sweep.py --config configs/scaling_toy_cpu.yaml --dry_run true  # the plan only
    python pretrain/scaling_sweep.py --config configs/scaling_gpu.yaml                    # one GPU

Run the same command again after an interruption: finished points are kept and an interrupted point
resumes. The sweep itself (planning, launching, the run table, the fits) is ``lit_tiny.scaling.sweep``.
"""

import sys

from lit_tiny.cli import run
from lit_tiny.scaling.sweep import run_sweep

if __name__ == "__main__":
    try:
        run(run_sweep)
    except KeyboardInterrupt:
        sys.exit("scaling_sweep: interrupted. Run the same command again to resume: finished points are kept.")
