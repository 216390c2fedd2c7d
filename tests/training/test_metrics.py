import json
from types import SimpleNamespace

from lit_tiny.training.metrics import MetricsLog
from lit_tiny.training.run_dir import RunDir


def fake_fabric(logged):
    return SimpleNamespace(global_rank=0, log_dict=lambda metrics, step: logged.append((step, metrics)))


def test_resume_drops_lines_after_the_saved_step_and_keeps_elapsed_time(tmp_path):
    logged = []
    log = MetricsLog(fake_fabric(logged), RunDir(tmp_path), resumed_step=0)
    for step in (1, 2, 3, 4):
        log.log(step, {"loss": 5.0 - step, "note": "text is kept out of TensorBoard"})
    assert [s for s, _ in logged] == [1, 2, 3, 4] and "note" not in logged[0][1]
    elapsed_at_2 = log.read()[1]["elapsed_s"]

    resumed = MetricsLog(fake_fabric(logged), RunDir(tmp_path), resumed_step=2)
    assert [m["step"] for m in resumed.read()] == [1, 2]
    assert resumed.wall_time() >= elapsed_at_2
    resumed.log(3, {"loss": 1.5})
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3] and lines[-1]["loss"] == 1.5
