"""The fit stage on the committed tables: reading and checking tables, dropping unusable models,
the ablation table, the frozen default coefficients, and `demogen fit`."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from pgdl_task import small_cnn
from sklearn.model_selection import GroupKFold

from demogen import margin_signature
from demogen.cli import main
from demogen.competition import pgdl
from demogen.competition.scoring import conditional_mutual_information
from demogen.frozen import coefficients
from demogen.measure import features
from demogen_fit import ablations, candidates, freeze, tables

VGG = tables.REPOSITORY / "features_cache" / "vgg.csv"


@pytest.fixture(scope="module")
def pool():
    return tables.read_sources()


def test_primary_pool_reads_with_its_settings(pool):
    assert len(pool) == 288 and set(pool["task"]) == {"nin_clean", "nin_noise20"}
    assert pool["model_id"].map(type).eq(str).all()
    assert set(pool["label_noise"]) == {0.0, 0.2}
    groups = tables.configuration_groups(pool)
    assert len(set(groups)) == 144  # the two seeds of each configuration share a group
    twins = pool.groupby(groups)["hp.seed"].apply(sorted)
    assert all(seeds == [0, 1] for seeds in twins)


def test_usable_says_which_models_were_dropped_and_why():
    table = pd.DataFrame({"task": "t", "model_id": ["0", "1", "2", "3"],
                          "error": ["", "diverged", "", ""], "gap": 0.1,
                          "a": [1.0, 1.0, np.nan, 2.0], "b": [1.0, 1.0, 1.0, -1.0]})
    kept, dropped = tables.usable(table, ["a", "b"], "log")
    assert list(kept["model_id"]) == ["0"]
    assert [(d["model_id"], d["reason"]) for d in dropped] == [
        ("1", "no signature: diverged"), ("2", "missing (NaN) feature value"),
        ("3", "a feature <= 0 under the log transform")]
    kept, _ = tables.usable(table, ["a", "b"], "linear")
    assert list(kept["model_id"]) == ["0", "3"]
    with pytest.raises(ValueError, match="no column.*c; rebuild"):
        tables.usable(table, ["a", "c"])


def test_mixed_extractor_versions_or_settings_are_refused(tmp_path):
    table = pd.read_csv(VGG, dtype=str)
    table.loc[3, "n_examples"] = "1024"
    table.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(ValueError, match="mix n_examples values"):
        tables.read_sources([tmp_path / "mixed.csv"])
    table = pd.read_csv(VGG, dtype=str).assign(extractor_version="0")
    table.to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(ValueError, match="extractor version 0.*rebuild"):
        tables.read_sources([tmp_path / "old.csv"])
    table = pd.DataFrame(tables.read_table(VGG))
    table.loc[5, "versions"] = table.loc[5, "versions"].replace("spectral=1.1", "spectral=2.1")
    table.to_csv(tmp_path / "baselines.csv", index=False)
    with pytest.raises(ValueError, match=r"mix versions of the feature groups spectral "
                                         r"\(1.1, 2.1\); refresh the old rows"):
        tables.read_sources([tmp_path / "baselines.csv"])
    with pytest.raises(ValueError, match="appears twice"):
        tables.read_sources([VGG, VGG])
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(ValueError, match="not a demogen feature table"):
        tables.read_sources([tmp_path / "other.csv"])
    with pytest.raises(FileNotFoundError, match="neither a feature table"):
        tables.read_sources([tmp_path / "nothing"])


def test_the_shipped_paper_predictor_is_the_fit_of_the_committed_pool(pool):
    """The shipped paper file is reproducible from the committed table (refit after a change
    with `demogen fit --out demogen/frozen/resources/paper_nin.json`)."""
    frozen, estimator, kept, figures, dropped = freeze.fit(pool, [tables.PRIMARY_POOL])
    shipped = coefficients.load(predictor="paper_nin")
    expected, got = json.loads(json.dumps(frozen.as_dict())), shipped.as_dict()
    for key in ("coefficients", "intercept", "metrics"):
        assert got.pop(key) == pytest.approx(expected.pop(key), rel=1e-9)
    assert got == expected
    assert len(kept) + len(dropped) == 288 and all("zero total variation" in d["reason"]
                                                   for d in dropped)
    sample = kept[ablations.QUARTILES].iloc[:5].to_numpy()
    np.testing.assert_allclose(shipped.predict_many(sample),
                               estimator.predict(kept[ablations.QUARTILES].iloc[:5]))


def test_ablation_table_has_every_row_and_the_paper_beside(pool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = ablations.table1(pool)
    assert list(table["row"][:10]) == list(ablations.PAPER)
    measured = table.dropna(subset=["adjusted_r2"])
    assert {"qrt+log", "sf+log", "best4+log", "hyperparameters only (one-hot)",
            "label noise only"} <= set(measured["row"])
    assert measured.set_index("row").loc["sf+log", "n_features"] == 4
    # the figures against numpy's least squares on the models with a signature
    kept = measurable(pool)
    gap = kept["gap"].to_numpy()
    moments = ablations.columns("mom", "moment")
    lm = [f"lm.{slot}" for slot in ("input", "h1", "h2", "h3")]
    expected = {"qrt+log": adjusted_r2(np.log(kept[ablations.QUARTILES]), gap),
                "qrt+linear": adjusted_r2(kept[ablations.QUARTILES], gap),
                "moment+log": adjusted_r2(np.log(kept[moments]), gap),
                "LM+linear": adjusted_r2(kept[lm], gap),
                # sf: the one statistic that fits best at all four layers
                "sf+log": max(adjusted_r2(np.log(kept[ablations.QUARTILES[s::5]]), gap)
                              for s in range(5)),
                # one indicator: R^2 is the share of the variance between the noise levels
                "label noise only": adjusted(between_share(gap, kept["label_noise"]), len(gap),
                                             1)}
    got = measured.set_index("row").loc[list(expected)]
    assert (got["n_models"] == len(kept)).all()
    assert got["adjusted_r2"].to_dict() == pytest.approx(expected, rel=1e-9)
    layers = ablations.per_layer(pool)
    assert list(layers["layer"]) == ["input", "h1", "h2", "h3", "all"]
    assert (layers["adjusted_r2"].iloc[:4] < layers["adjusted_r2"].iloc[4]).all()
    assert list(layers["adjusted_r2"]) == pytest.approx(
        [adjusted_r2(np.log(kept[ablations.QUARTILES[5 * k:5 * k + 5]]), gap)
         for k in range(4)] + [expected["qrt+log"]], rel=1e-9)


def measurable(pool):
    """The models of the pool with a signature (the usable ones), picked by hand."""
    kept = pool[(pool["error"] == "") & pool[ablations.QUARTILES].notna().all(axis=1)]
    assert len(kept) == 283
    return kept.reset_index(drop=True)


def adjusted(r2, n, p):
    return 1 - (1 - r2) * (n - 1) / (n - p - 1)


def least_squares(X, y, new=None):
    """numpy's least-squares fit of y on X with an intercept: its predictions on `new` (by
    default X)."""
    X = np.asarray(X)
    solution = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), y, rcond=None)[0]
    return solution[0] + (X if new is None else np.asarray(new)) @ solution[1:]


def r2(y, prediction):
    return 1 - np.sum((y - prediction) ** 2) / np.sum((y - y.mean()) ** 2)


def adjusted_r2(X, y):
    """Adjusted R^2 of the least-squares fit of y on X."""
    return adjusted(r2(y, least_squares(X, y)), len(y), X.shape[1])


def between_share(y, labels):
    """The share of the variance of y that lies between the groups of `labels`."""
    frame = pd.DataFrame({"y": y, "label": labels})
    means = frame.groupby("label")["y"].transform("mean")
    return np.sum((means - y.mean()) ** 2) / np.sum((y - y.mean()) ** 2)


def test_competition_view_scores_each_task(pool):
    view = ablations.competition_view(pool)
    assert set(view["task"]) == {"nin_clean", "nin_noise20"}
    assert set(view["predictions"]) == {"in-sample", "out-of-fold"}
    # the least-squares fit on all models and on scikit-learn's grouped folds, scored by scipy
    # (tau-b) and by the competition's CMI (checked against its literal program in test_scoring)
    kept = measurable(pool)
    X, gap = np.log(kept[ablations.QUARTILES].to_numpy()), kept["gap"].to_numpy()
    predictions = {"in-sample": least_squares(X, gap), "out-of-fold": np.zeros(len(gap))}
    folds = GroupKFold(10, shuffle=True, random_state=0)
    for train, test in folds.split(X, groups=tables.configuration_groups(kept)):
        predictions["out-of-fold"][test] = least_squares(X[train], gap[train], X[test])
    for row in view.itertuples():
        rows = (kept["task"] == row.task).to_numpy()
        p, g = predictions[row.predictions][rows], gap[rows]
        hparams = kept.loc[rows, tables.hparam_columns(kept)].rename(columns=lambda c: c[3:])
        assert row.n_models == rows.sum() == 144 - 5 * (row.task == "nin_clean")
        assert row.r2 == pytest.approx(r2(g, p), rel=1e-9)
        assert row.kendall_tau == pytest.approx(scipy.stats.kendalltau(p, g).statistic,
                                                abs=1e-12)
        assert row.cmi == pytest.approx(
            conditional_mutual_information(p, g, hparams.to_dict("records")), abs=1e-9)


def test_cli_fit_json_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["fit", "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"adjusted_r2", "kfold_r2", "grouped_kfold_r2", "mse", "n_models"} <= set(report)
    assert report["n_models"] == 283 and len(report["dropped"]) == 5
    frozen = coefficients.load(out)
    assert frozen.metrics["grouped_kfold_r2"] == report["grouped_kfold_r2"]


def test_cli_fit_refuses_a_pool_too_small_for_20_features(tmp_path, capsys):
    pd.read_csv(VGG, dtype=str).iloc[:20].to_csv(tmp_path / "small.csv", index=False)
    assert main(["fit", str(tmp_path / "small.csv"), "--out", str(tmp_path / "c.json")]) == 2
    assert "cannot fit 20 features" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """A PGDL task of 30 random models on a 6 x 5 grid, with made-up accuracies."""
    root = tmp_path_factory.mktemp("fit") / "toy"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6, 6, 1)).astype(np.float32)
    pgdl.write_dataset(root / "dataset_1" / "train", x, rng.integers(0, 3, 60))
    configs = {}
    for model_id in range(30):
        pgdl.write_model(root / f"model_{model_id}", small_cnn(model_id), (6, 6, 1))
        train_acc, test_acc = rng.uniform(0.7, 1.0), rng.uniform(0.4, 0.7)
        configs[str(model_id)] = {
            "hparams": {"a": {"current_value": model_id // 5, "possible_values": list(range(6))},
                        "b": {"current_value": model_id % 5, "possible_values": list(range(5))}},
            "metrics": {"train_acc": train_acc, "test_acc": test_acc}}
    pgdl.write_model_configs(root, configs)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One joblib store for the task folder, so that its models are measured once: read_task
    and $DEMOGEN_CACHE use this folder as given; `--cache` (a string, to which joblib adds
    "joblib") is given its parent."""
    return tmp_path_factory.mktemp("cache") / "joblib"


def test_task_folder_features_are_measured_once_then_cached(task, cache, monkeypatch):
    table = tables.read_task(task, cache, progress=False)
    assert list(table["model_id"]) == [str(k) for k in range(30)]
    assert list(table["hp.a"][:6]) == [0, 0, 0, 0, 0, 1]
    row = table.iloc[7]
    assert row["gap"] == pytest.approx(row["train_acc"] - row["test_acc"])
    expected = margin_signature(pgdl.load_model(task, "7"), pgdl.load_dataset(task))
    np.testing.assert_allclose(row[ablations.QUARTILES].to_numpy(float), expected.values)
    assert all(tables.parse_versions(v)["jacobian"] == features.version("jacobian")
               for v in table["versions"]) and "jacobian.q2" in table.columns

    def refuse(*args, **kwargs):
        raise RuntimeError("measured again")

    monkeypatch.setattr(features, "measure", refuse)
    again = tables.read_task(task, cache, progress=False)
    pd.testing.assert_frame_equal(again, table)
    pgdl.write_model(task / "model_3", small_cnn(99), (6, 6, 1))  # new weights: measured anew
    with pytest.raises(RuntimeError, match="measured again"):
        tables.read_task(task, cache, progress=False)
    pgdl.write_model(task / "model_3", small_cnn(3), (6, 6, 1))


def test_cli_fit_on_a_task_folder(task, cache, tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["fit", str(task), "--json", "--out", str(out),
                 "--cache", str(cache.parent)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_models"] + len(report["dropped"]) == 30
    assert coefficients.load(out).pool["sources"] == [{"task_folder": str(task)}]


def test_too_small_folds_are_refused_with_the_reason(task, cache, tmp_path, capsys):
    rows = tables.read_task(task, cache, progress=False).iloc[:23]
    rows.to_csv(tmp_path / "t.csv", index=False)
    assert main(["fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "c.json")]) == 2
    assert "10-fold split of 23 models leaves only" in capsys.readouterr().err


def test_cli_fit_writes_nothing_unless_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", str(VGG)]) == 0
    assert "no coefficient file written: add --out FILE" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ("", r"feature table .*bad\.csv is empty; write it again"),
    (None, r"feature table .*bad\.csv has a header but no rows"),
    ("nan gap", r"no usable model among 3 \(e\.g\. vgg_clean/\d+: missing \(NaN\) gap"),
])
def test_cli_fit_names_an_empty_table_or_a_missing_gap(tmp_path, capsys, text, message):
    path = tmp_path / "bad.csv"
    table = pd.read_csv(VGG, dtype=str)
    if text is None:
        table.iloc[:0].to_csv(path, index=False)
    elif text == "nan gap":
        table.iloc[:3].assign(gap="").to_csv(path, index=False)
    else:
        path.write_text(text)
    assert main(["fit", str(path), "--out", str(tmp_path / "c.json")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "c.json").exists()


def test_a_missing_gap_drops_that_model_with_its_reason():
    table = tables.read_csv(VGG)
    table.loc[4, "gap"] = np.nan
    table["error"] = table["error"].fillna("")
    kept, dropped = tables.usable(table, ablations.QUARTILES, "log")
    assert {"task": "vgg_clean", "model_id": table.loc[4, "model_id"],
            "reason": "missing (NaN) gap"} in dropped
    assert len(kept) + len(dropped) == len(table)


def test_a_task_folder_keeps_what_it_can_measure_of_each_model(tmp_path):
    """A SeparableConv2D model has no spectral-complexity baseline but keeps its signatures; a
    model whose weights file is corrupt is dropped with the reason; the others are unaffected."""
    from pgdl_task import randomize
    from tensorflow import keras

    rng = np.random.default_rng(0)
    pgdl.write_dataset(tmp_path / "dataset_1" / "train",
                       rng.normal(size=(40, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, 40))
    separable = randomize(keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.SeparableConv2D(4, 3, padding="same", activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(3)]), 1)
    for model_id, model in enumerate([small_cnn(0), separable, small_cnn(2)]):
        pgdl.write_model(tmp_path / f"model_{model_id}", model, (6, 6, 1))
    weights = tmp_path / "model_2" / "weights.hdf5"
    weights.write_bytes(weights.read_bytes()[:100])
    pgdl.write_model_configs(tmp_path, {str(i): {
        "hparams": {"a": {"current_value": i, "possible_values": [0, 1, 2]}},
        "metrics": {"train_acc": 0.9, "test_acc": 0.8}} for i in range(3)})
    table = tables.read_task(tmp_path, tmp_path / "cache", progress=False)
    ok, separable_row, broken = (table.iloc[i] for i in range(3))
    assert ok["error"] == "" and np.isfinite(ok["spectral.q2"])
    assert separable_row["error"] == ""
    assert np.isfinite(separable_row[ablations.QUARTILES].to_numpy(float)).all()
    assert np.isfinite(separable_row["w.log_spectral.mean"])
    assert np.isnan(separable_row["spectral.q2"])
    assert "spectral: " in separable_row["feature_errors"]
    assert "SeparableConv2D" in separable_row["feature_errors"]
    assert re.search(r"weights\.hdf5 is not readable HDF5 .*truncated or corrupt", broken["error"])


def test_pools_with_different_hyperparameters_fit_together(capsys):
    """nin (width, batch_norm, ..., seed) and vgg (filters, conv_blocks, ...) share no
    hyperparameter but mix in one fit."""
    table = tables.read_sources([tables.PRIMARY_POOL, VGG])
    groups = tables.configuration_groups(table)
    assert len(set(groups[table["task"] == "vgg_clean"])) == 32
    assert main(["fit", str(tables.PRIMARY_POOL), str(VGG), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_models"] == 283 + 30


def test_a_fit_on_a_task_folder_leaves_features_cache_committable(task, cache, monkeypatch,
                                                                     capsys):
    """joblib's cache goes to $DEMOGEN_CACHE (else ~/.cache/demogen), never into the folder of
    committed tables, where its .gitignore would hide new tables from git."""
    tables.read_task(task, cache, progress=False)  # every model in the store (measured once)
    monkeypatch.setenv("DEMOGEN_CACHE", str(cache))
    assert tables.cache_dir() == cache

    def refuse(*args, **kwargs):
        raise RuntimeError("measured again: the fit did not read $DEMOGEN_CACHE")

    monkeypatch.setattr(features, "measure", refuse)
    before = set((tables.REPOSITORY / "features_cache").rglob("*"))
    assert main(["fit", str(task), "--json"]) == 0
    assert set((tables.REPOSITORY / "features_cache").rglob("*")) == before
    assert any(cache.rglob("*.pkl")) or any(cache.iterdir())


def test_tables_of_different_feature_versions_are_refused(tmp_path):
    table = pd.DataFrame(tables.read_table(tables.CORPUS))
    table.loc[0, "versions"] = table.loc[0, "versions"].replace("acc=1.1", "acc=1.0")
    table.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(ValueError, match=r"mix versions of the feature groups acc \(1.0, 1.1\)"):
        tables.read_sources([tmp_path / "mixed.csv"])
    stale = table.assign(versions=table["versions"].str.replace("acc=1.1", "acc=1.0"))
    stale.to_csv(tmp_path / "stale.csv", index=False)
    with pytest.raises(ValueError, match=r"acc version 1.0 \(this demogen computes 1.1\); "
                                         "refresh them"):
        candidates.fit(candidates.CANDIDATES["train_accuracy"],
                       tables.read_sources([tmp_path / "stale.csv"]))
    # Tables made before the versions column hold version 1.1 of every group they have.
    both = tables.read_sources([tables.CORPUS, tables.PRIMARY_POOL])
    assert tables.table_versions(both, ["qrt", "acc"]) == {"qrt": "1.1", "acc": "1.1"}


def test_reading_tables_of_many_columns_warns_nothing():
    """Two corpus tables concatenated used to leave a frame so fragmented that every later
    column added warned (pandas' PerformanceWarning) in each command that read them."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = tables.read_sources([tables.CORPUS, tables.CORPUS_LOCKBOX])
    assert len(table) == 640 and table["n_test"].notna().all()
