"""Run from the root of a clean clone, a whole path (a scratch pool, its signatures, a fit on a
committed table, a bundle, an ingestion and its score) writes nothing into the checkout, and
nothing into the home folder or $TMPDIR but demogen's cache folder."""

import pathlib
import subprocess
import sys

from user_env import files_under, fresh_home

ROOT = pathlib.Path(__file__).parents[1]
DEMOGEN = pathlib.Path(sys.executable).parent / "demogen"  # the code under test, not the clone's


def test_a_whole_path_leaves_the_checkout_home_and_tmpdir_clean(tmp_path):
    clone, out = tmp_path / "clone", tmp_path / "out"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    home, tmp, env = fresh_home(tmp_path)

    def demogen(*args):
        run = subprocess.run([str(DEMOGEN), *map(str, args)], cwd=clone, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]

    demogen("zoo", "--preset", "tiny", "--out", out / "pool")
    assert (out / "pool" / "features" / "tiny.csv").is_file()  # a scratch preset's table
    demogen("signature", out / "pool", "--model", "0")  # the folder zoo wrote
    demogen("fit", "features_cache/vgg.csv")
    demogen("bundle", "--out", out / "submission.zip")
    demogen("ingest", "--submission", out / "submission.zip", "--tasks", out / "pool", "--out",
            out / "predictions")
    demogen("score", "--predictions", out / "predictions", "--tasks", out / "pool")
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=clone,
                            capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert all(name.startswith(".cache/demogen/") for name in files_under(home))
    assert files_under(tmp) == []
