"""--cluster: the zoo, the measuring of task folders and the transfer evaluation on a real Dask
LocalCluster give what the local workers give; a worker killed in mid-run loses nothing; bad
addresses and options are clear errors."""

import json
import os
import sys

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from demogen.cli import main  # noqa: E402
from demogen_fit import cluster, tables, transfer, zoo  # noqa: E402
from demogen_fit.presets import PRESETS  # noqa: E402
from test_transfer import NAMES, synthetic  # noqa: E402

WALL_CLOCK = ["seconds"]


@pytest.fixture(scope="module")
def local_pool(tmp_path_factory):
    """The tiny preset trained by two local (loky) workers."""
    root = tmp_path_factory.mktemp("local")
    zoo.run("tiny", root / "pool", workers=2, features=root / "features", progress=False)
    return root


@pytest.fixture(scope="module")
def client():
    with cluster.connect("local:2") as client:
        yield client


def table(path):
    """A feature table as a frame, the wall-clock columns left out."""
    return pd.read_csv(path, keep_default_na=False).drop(columns=WALL_CLOCK)


def test_the_zoo_on_a_local_cluster_writes_the_local_table(local_pool, tmp_path, capsys):
    out = tmp_path / "pool"
    assert main(["zoo", "--preset", "tiny", "--out", str(out), "--cluster", "local:2"]) == 0
    assert "tiny: 8 models" in capsys.readouterr().out
    pd.testing.assert_frame_equal(table(out / "features" / "tiny.csv"),
                                  table(local_pool / "features" / "tiny.csv"))
    assert json.loads((out / "tiny" / "model_configs.json").read_text()) == \
        json.loads((local_pool / "pool" / "tiny" / "model_configs.json").read_text())


def test_task_folders_are_measured_and_signed_on_the_cluster_as_here(local_pool, client,
                                                                       tmp_path, capsys):
    task = local_pool / "pool" / "tiny"
    here = tables.read_task(task, tmp_path / "here", progress=False)
    there = tables.read_task(task, tmp_path / "there", progress=False, client=client)
    pd.testing.assert_frame_equal(there, here)
    # measured once: the second read is joblib's cache, with or without the cluster
    pd.testing.assert_frame_equal(
        tables.read_task(task, tmp_path / "there", progress=False, client=client), here)
    assert main(["signature", str(task), "--json"]) == 0
    signatures = json.loads(capsys.readouterr().out)
    assert main(["signature", str(task), "--json", "--cluster", "local:1"]) == 0
    assert json.loads(capsys.readouterr().out) == signatures
    assert len(signatures) == 8 and all(len(s["signature"]) == 20 for s in signatures)


def test_evaluate_on_a_local_cluster_writes_the_json_of_local_jobs(client, tmp_path):
    assert transfer.evaluate(synthetic(swap=(2, 5, 8)), NAMES, client=client).to_json() == \
        transfer.evaluate(synthetic(swap=(2, 5, 8)), NAMES, n_jobs=2).to_json()
    path = tmp_path / "synthetic.csv"
    synthetic().assign(extractor_version=1, n_examples=16, sample_seed=0).to_csv(path,
                                                                                 index=False)
    for option, out in ((["--jobs", "2"], "jobs.json"), (["--cluster", "local:2"], "dask.json")):
        assert main(["evaluate", str(path), "--candidates", *NAMES, "--json", "--out",
                     str(tmp_path / out), *option]) == 0
    assert (tmp_path / "dask.json").read_text() == (tmp_path / "jobs.json").read_text()


class ExitDuringSecondTask(distributed.WorkerPlugin):
    """Makes the first worker that starts its second task exit a second into it (once: the
    marker file says it happened)."""

    def __init__(self, marker):
        self.marker = marker

    def setup(self, worker):
        self.started = 0

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing":
            return
        self.started += 1
        if self.started == 2:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            import threading
            threading.Timer(1.0, os._exit, (1,)).start()


def test_a_worker_killed_in_mid_run_loses_only_its_model_in_flight(local_pool, tmp_path):
    marker = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) \
            as local, cluster.connect(local.scheduler_address) as client:
        client.register_plugin(ExitDuringSecondTask(str(marker)))
        rows = zoo.run("tiny", tmp_path / "pool", features=tmp_path / "features",
                       progress=False, client=client)
    assert marker.exists()  # a worker did exit during a task, which was resubmitted
    assert sorted(r["model_id"] for r in rows) == sorted(m for m, _ in
                                                         PRESETS["tiny"].tasks[0].combinations())
    pd.testing.assert_frame_equal(table(tmp_path / "features" / "tiny.csv"),
                                  table(local_pool / "features" / "tiny.csv"))


def test_bad_cluster_options_are_clear_errors(tmp_path, capsys, monkeypatch):
    out = tmp_path / "pool"
    # a scheduler that does not answer: refused before any work
    assert main(["zoo", "--preset", "tiny", "--out", str(out), "--cluster",
                 "tcp://127.0.0.1:9"]) == 2
    assert "no Dask scheduler answers at 'tcp://127.0.0.1:9'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["zoo", "--preset", "tiny", "--out", str(out), "--cluster", "local:0"]) == 2
    assert "--cluster local:N needs a number of workers N of at least 1, got 'local:0'" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["zoo", "--preset", "tiny", "--out", str(out), "--cluster", "local:2",
              "--workers", "2"])
    assert exit_.value.code == 2
    assert "argument --workers: not allowed with argument --cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--jobs", "2", "--cluster", "local:2"])
    assert "not allowed with argument --jobs" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # the extra not installed
    assert main(["fit", str(tmp_path), "--cluster", "local:2"]) == 2
    assert "install it with: pip install 'demogen[cluster]'" in capsys.readouterr().err
    assert not out.exists()


def test_threaded_workers_are_refused():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as local:
        with pytest.raises(ValueError, match="run several threads.*--nthreads 1"):
            with cluster.connect(local.scheduler_address):
                pass


def test_the_workers_reach_the_task_folders_by_absolute_paths(tmp_path, monkeypatch):
    """A relative --out is sent to the workers as the absolute path it names here."""
    submitted = []

    class Recording:
        def submit(self, function, *args):
            submitted.append(args)
            raise KeyboardInterrupt  # nothing needs to run

        def stop(self):
            pass

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cluster, "_Loky", lambda workers: Recording())
    with pytest.raises(KeyboardInterrupt):
        zoo.run("tiny", "pool", workers=1, progress=False)
    assert submitted[0][4] == tmp_path / "pool" / "tiny"
