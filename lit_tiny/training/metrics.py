"""Training metrics: TensorBoard through Fabric's logger, plus the run folder's ``metrics.jsonl``.

Only rank 0 writes. Values must already be reduced over ranks by the caller. Every line carries
``elapsed_s``, the training wall time summed over all jobs of the run (resumes included).
"""

from __future__ import annotations

import time
from typing import Any

from lit_tiny.training.run_dir import RunDir


class MetricsLog:
    def __init__(self, fabric, run: RunDir, resumed_step: int) -> None:
        self.fabric = fabric
        self.run = run
        self.start = time.perf_counter()
        if fabric.global_rank == 0:
            kept = run.keep_metrics_through(resumed_step)
        else:
            kept = [m for m in run.read_metrics() if m["step"] <= resumed_step]
        self.offset = kept[-1].get("elapsed_s", 0.0) if kept else 0.0

    def wall_time(self) -> float:
        return self.offset + time.perf_counter() - self.start

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.fabric.log_dict({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)
        if self.fabric.global_rank == 0:
            self.run.append_metrics({"step": step, **metrics, "elapsed_s": round(self.wall_time(), 3)})

    def read(self) -> list[dict[str, Any]]:
        return self.run.read_metrics()
