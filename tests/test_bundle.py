"""The submission zip: what it holds, and that it runs on its own in a clean interpreter."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import cnn, data_for

from demogen import margin_signature
from demogen.cli import main
from demogen.competition.bundle import write_bundle
from demogen.frozen import coefficients


def test_the_zip_holds_the_entry_point_metadata_coefficients_and_only_the_runtime(tmp_path):
    assert main(["bundle", "--out", str(tmp_path / "sub.zip")]) == 0
    names = set(zipfile.ZipFile(tmp_path / "sub.zip").namelist())
    assert {"complexity.py", "metadata", "coefficients.json", "demogen/__init__.py",
            "demogen/frozen/__init__.py", "demogen/frozen/predictor.py",
            "demogen/frozen/coefficients.py", "demogen/measure/__init__.py",
            "demogen/measure/margins.py"} <= names
    assert all(n.count("/") <= 2 for n in names)
    assert not {n for n in names if n.startswith(("fit/", "demogen/competition/")) or n.endswith(
        ("cli.py", "bundle.py", "ingest.py", "ingest_child.py", "evaluation.py", "tasks.py"))}


@pytest.mark.parametrize("arguments, shipped", [([], "selected"),
                                                (["--predictor", "selected"], "selected"),
                                                (["--predictor", "paper_nin"], "paper_nin")])
def test_the_zip_holds_the_shipped_predictor_asked_for(tmp_path, arguments, shipped):
    assert main(["bundle", "--out", str(tmp_path / "sub.zip"), *arguments]) == 0
    text = zipfile.ZipFile(tmp_path / "sub.zip").read("coefficients.json").decode()
    assert text == coefficients.shipped_text(shipped)


def test_a_shipped_predictor_and_a_file_of_ones_own_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bundle", "--predictor", "paper_nin", "--coefficients", "c.json",
              "--out", str(tmp_path / "sub.zip")])
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "sub.zip").exists()


def test_a_bad_coefficient_file_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ValueError, match="schema version"):
        write_bundle(tmp_path / "sub.zip", tmp_path / "c.json")
    assert list(tmp_path.iterdir()) == [tmp_path / "c.json"]


def test_the_unzipped_submission_runs_alone_and_equals_the_library(tmp_path):
    custom = coefficients.load(predictor="paper_nin").as_dict()
    custom["intercept"] += 1.0
    (tmp_path / "c.json").write_text(json.dumps(custom))
    write_bundle(tmp_path / "sub.zip", tmp_path / "c.json")
    folder = tmp_path / "submission"
    zipfile.ZipFile(tmp_path / "sub.zip").extractall(folder)
    model = cnn()
    x, y = data_for(model, n=200)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    frozen = coefficients.from_dict(custom)
    expected = frozen.predict_many([margin_signature(model, (x, y)).values])[0]
    code = ("import sys, json, numpy as np, tensorflow as tf\n"
            "model = tf.keras.models.load_model(sys.argv[1])\n"
            "d = np.load(sys.argv[2])\n"
            "ds = tf.data.Dataset.from_tensor_slices((d['x'], d['y'].astype(np.int32)))\n"
            "before = set(sys.modules)\n"  # tensorflow itself loads scikit-learn
            "from complexity import complexity\n"
            "value = complexity(model, ds)\n"
            "import demogen\n"
            "print(json.dumps([value, demogen.__file__, sorted({m.split('.')[0] for m in "
            "set(sys.modules) - before} & {'fit', 'statsmodels', 'sklearn', 'tqdm', "
            "'pandas', 'joblib'})]))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.keras"),
                          str(tmp_path / "data.npz")], cwd=folder, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    value, demogen_file, offline = json.loads(run.stdout.splitlines()[-1])
    assert value == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert demogen_file.startswith(str(folder))
    assert offline == []
