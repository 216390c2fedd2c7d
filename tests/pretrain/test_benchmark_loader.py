import json
import sys

import pytest

from lit_tiny.training.settings import DataArgs
from tests.conftest import REPO_ROOT, import_script

SCRIPT = REPO_ROOT / "pretrain" / "benchmark_loader.py"


@pytest.fixture(scope="module")
def loader_benchmark():
    module = import_script(SCRIPT, "benchmark_loader_script")
    yield module
    del sys.modules[module.__name__]


def test_loader_benchmark_times_the_training_loader_with_workers(loader_benchmark, corpus, tmp_path, capsys):
    data = DataArgs(train_dirs=[corpus["english"], corpus["code"]], weights=[0.7, 0.3], val_dirs=[corpus["val"]],
                    num_workers=2)
    out = tmp_path / "loader.json"
    report = loader_benchmark.main(model="debug", block_size=32, micro_batch_size=4, batches=30, skip=3, data=data,
                                   out=out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    assert report["batch_shape"] == [4, 33]  # each block carries its next-token target
    assert report["tokens_per_s_per_rank"] == pytest.approx(30 * 4 * 32 / report["seconds"])
    assert report["settings"]["data"]["num_workers"] == 2 and len(report["settings"]["data"]["sources"]) == 2
    assert "tokens/s per rank" in capsys.readouterr().out


def test_loader_benchmark_refuses_an_empty_count(loader_benchmark, tmp_path):
    with pytest.raises(ValueError, match="batches must be positive"):
        loader_benchmark.main(batches=0, out=tmp_path / "x.json")
