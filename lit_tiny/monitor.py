"""Training metrics: TensorBoard through Fabric's logger, plus ``metrics.jsonl`` for scripts and sweeps.

Only rank 0 writes. Values must already be reduced over ranks by the caller. Every line carries
``elapsed_s``, the training wall time summed over all jobs of the run (resumes included).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    def __init__(self, fabric, out_dir: Path, resumed_step: int) -> None:
        self.fabric = fabric
        self.path = Path(out_dir) / METRICS_FILE
        self.start = time.perf_counter()
        kept = [m for m in self.read() if m["step"] <= resumed_step]
        self.offset = kept[-1].get("elapsed_s", 0.0) if kept else 0.0
        if fabric.global_rank == 0 and self.path.is_file():
            # A resumed run logs the steps after its saved state again: drop the earlier attempt's lines.
            self.path.write_text("".join(json.dumps(m) + "\n" for m in kept))

    def wall_time(self) -> float:
        return self.offset + time.perf_counter() - self.start

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.fabric.log_dict({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)
        if self.fabric.global_rank == 0:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, **metrics, "elapsed_s": round(self.wall_time(), 3)}) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
