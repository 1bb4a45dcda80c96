"""The model zoo: the tiny preset end to end, resuming, determinism."""

import contextlib
import dataclasses
import itertools
import json
import pathlib

import numpy as np
import pytest

from demogen.cli import main
from demogen.competition import pgdl
from demogen_fit import baselines, cluster, tables, zoo
from demogen_fit import train as training
from demogen_fit.presets import PRESETS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    rows = zoo.run("tiny", root / "pool", workers=1, features=root / "features", progress=False)
    return root, rows


TINY = PRESETS["tiny"].tasks[0]
TINY_IDS = [model_id for model_id, _ in TINY.combinations()]
TINY_GRID = {name: list(values) for name, values in TINY.grid.items()}


def test_tiny_pool_is_a_complete_pgdl_task(tiny):
    root, rows = tiny
    task = root / "pool" / "tiny"
    assert len(TINY_IDS) >= 4
    assert sorted(p.name for p in task.iterdir() if "model" in p.name) == \
        sorted([f"model_{i}" for i in TINY_IDS] + ["model_configs.json"])
    configs = pgdl.read_model_configs(task)
    assert pgdl.validate_grid(configs) == {name: sorted(v) for name, v in TINY_GRID.items()}
    assert configs == json.loads((root / "features" / "tiny" / "tiny" /
                                  "model_configs.json").read_text())
    assert sorted(tuple(r[f"hp.{name}"] for name in sorted(TINY_GRID)) for r in rows) == \
        sorted(itertools.product(*(TINY_GRID[name] for name in sorted(TINY_GRID))))
    for model_id, entry in configs.items():
        model = pgdl.load_model(task, model_id)
        row = next(r for r in rows if r["model_id"] == model_id)
        assert zoo.weights_digest(model) == row["weights_digest"]
        x = np.stack([e[0] for e in pgdl.load_dataset(task, "test").take(500).as_numpy_iterator()])
        assert x.shape == (500, 28, 28, 1)
        assert entry["metrics"]["train_acc"] == row["train_acc"]
    assert len(list(pgdl.load_dataset(task, "test"))) == 10000
    assert len(list(pgdl.load_dataset(task, "train"))) == TINY.n_train
    assert sorted(p.name for p in (root / "pool").iterdir()) == ["tiny"]  # only task folders


def test_feature_table_matches_the_signature_command(tiny, capsys):
    root, _ = tiny
    table = zoo.read_table(root / "features" / "tiny.csv")
    assert [r["model_id"] for r in table] == TINY_IDS
    assert all(r["extractor_version"] == 1 and r["error"] == "" for r in table)
    assert len([c for c in table[0] if c.startswith(("qrt", "mom"))]) == 8 * 20
    for row in table:
        assert tables.parse_versions(row["versions"])["spectral"] == "1.1"
        assert len(baseline_values(row)) == 5 + 1 + 5 + 4
        assert np.isfinite(list(baseline_values(row).values())).all()
    assert main(["signature", str(root / "pool" / "tiny"), "--json"]) == 0
    for result, row in zip(json.loads(capsys.readouterr().out), table):
        np.testing.assert_allclose(result["signature"], [row[f"qrt.{n}"] for n in result["names"]],
                                   rtol=1e-9)
        assert row["layers"] == " ".join(result["layers"])


def test_resuming_trains_only_what_is_missing_and_retraining_is_deterministic(tiny, monkeypatch):
    root, rows = tiny
    trained = []
    original = cluster.pool

    @contextlib.contextmanager
    def counting(workers, client=None):
        with original(workers, client) as pool:
            submit = pool.submit

            def recorded(function, preset, task, model_id, *args):
                trained.append(model_id)
                return submit(function, preset, task, model_id, *args)
            pool.submit = recorded
            yield pool

    monkeypatch.setattr(cluster, "pool", counting)
    zoo.run("tiny", root / "pool", workers=1, features=root / "features", progress=False)
    assert trained == []

    # Model 2 half-written (no done.json) and missing from the table: it alone is redone, and
    # comes out the same.
    (root / "pool" / "tiny" / "model_2" / "done.json").unlink()
    table = root / "features" / "tiny.csv"
    zoo.write_table(table, [r for r in zoo.read_table(table) if r["model_id"] != "2"])
    again = zoo.run("tiny", root / "pool", workers=1, features=root / "features", progress=False)
    assert trained == ["2"]
    before = next(r for r in rows if r["model_id"] == "2")
    after = next(r for r in again if r["model_id"] == "2")
    assert after["weights_digest"] == before["weights_digest"]
    assert after["qrt.h3.q2"] == before["qrt.h3.q2"]


def comparable(rows):
    """Rows with NaN replaced by a marker, so that equal rows compare equal."""
    return [{k: "NaN" if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
            for row in rows]


def baseline_values(row):
    return {k: v for k, v in row.items() if k.startswith(("spectral.", "jacobian.", "lm."))}


def without_baselines(row):
    """The row as if it had been made before the baseline groups existed."""
    versions = " ".join(item for item in row["versions"].split()
                        if item.split("=")[0] not in baselines.BASELINE_GROUPS)
    return {**{k: v for k, v in row.items() if k not in baseline_values(row)},
            "versions": versions}


def test_backfill_adds_the_baselines_training_computed_and_checks_the_weights(tiny):
    root, _ = tiny
    table = root / "features" / "tiny.csv"
    complete = zoo.read_table(table)
    stripped = [without_baselines(row) for row in complete]
    stripped[1]["weights_digest"] = "0" * 64
    zoo.write_table(table, stripped)
    with pytest.raises(ValueError, match="not the ones its feature row was made from"):
        zoo.backfill("tiny", root / "pool", workers=1, features=root / "features", progress=False)

    stripped[1]["weights_digest"] = complete[1]["weights_digest"]
    zoo.write_table(table, stripped)
    filled = zoo.backfill("tiny", root / "pool", workers=1, features=root / "features",
                          progress=False)
    assert comparable(zoo.read_table(table)) == comparable(filled)
    for before, after in zip(complete, sorted(filled, key=lambda r: int(r["model_id"]))):
        assert tables.parse_versions(after["versions"]) == tables.parse_versions(
            before["versions"])
        assert comparable([{k: v for k, v in after.items()
                            if k not in baseline_values(after) and k != "versions"}]) \
            == comparable([{k: v for k, v in before.items()
                            if k not in baseline_values(before) and k != "versions"}])
        assert after.keys() == before.keys()
        np.testing.assert_allclose(list(baseline_values(after).values()),
                                   list(baseline_values(before).values()), rtol=1e-6)


def test_a_row_without_a_group_and_without_its_model_is_remeasured_by_a_checked_retrain(
        tiny, tmp_path, capsys):
    root, rows = tiny
    table = root / "features" / "tiny.csv"
    complete = zoo.read_table(table)
    zoo.write_table(table, [without_baselines(row) if row["model_id"] in ("2", "3") else row
                            for row in complete])
    (root / "pool" / "tiny" / "model_3").rename(tmp_path / "model_3")
    with pytest.raises(FileNotFoundError, match="--remeasure"):
        zoo.backfill("tiny", root / "pool", workers=1, features=root / "features", progress=False)
    scratch = tmp_path / "scratch"
    bad = zoo.read_table(table)
    bad[2]["weights_digest"] = "0" * 64  # model 2: a retrain cannot reproduce this digest
    zoo.write_table(table, bad)
    options = ["--preset", "tiny", "--out", str(scratch), "--workers", "1", "--features",
               str(root / "features"), "--remeasure"]
    assert main(["zoo", *options]) == 1
    assert "1 retrained model(s) differ from their rows" in capsys.readouterr().err
    again = {r["model_id"]: r for r in zoo.read_table(table)}
    assert again["2"]["weights_digest"] == "0" * 64  # kept as it was: still without them
    assert zoo.missing_groups(again["2"], zoo.preset_groups(PRESETS["tiny"])) == list(
        baselines.BASELINE_GROUPS)
    assert not zoo.missing_groups(again["3"], zoo.preset_groups(PRESETS["tiny"]))
    assert again["3"]["weights_digest"] == complete[3]["weights_digest"]
    assert again["3"]["jacobian.q2"] == pytest.approx(complete[3]["jacobian.q2"], rel=1e-6)
    assert not (scratch / "tiny" / "model_3").exists()  # the weights are dropped
    assert {r["model_id"] for r in again.values()} == {r["model_id"] for r in complete}
    # Accepting retrains that differ: model 2's row becomes the retrained model's.
    assert main(["zoo", *options, "--replace-differing"]) == 0
    printed = capsys.readouterr()
    assert "replaced by the retrained models" in printed.err
    # its old row kept the retrained model's gap: the order of the task's gaps is unchanged
    assert "tiny: 1 of 8 replaced; Kendall tau-b of old and new gaps 1.000, mean |gap change| " \
        "0.0000" in printed.out
    replaced = {r["model_id"]: r for r in zoo.read_table(table)}["2"]
    assert replaced["weights_digest"] == complete[2]["weights_digest"]
    assert not zoo.missing_groups(replaced, zoo.preset_groups(PRESETS["tiny"]))


def test_retrain_agreement_by_hand():
    def row(task, model_id, gap, digest="a"):
        return {"task": task, "model_id": model_id, "gap": gap, "weights_digest": digest}

    old = [row("t", "0", 0.1), row("t", "1", 0.2), row("t", "2", 0.3), row("t", "3", 0.4),
           row("u", "0", 0.1), row("u", "1", 0.2)]
    new = [row("t", "0", 0.1), row("t", "1", 0.3, "b"), row("t", "2", 0.2, "b"),
           row("t", "3", float("nan"), "b"), row("u", "0", 0.1), row("u", "1", 0.2)]
    # t: model 3 has no gap now; over 0, 1, 2 one of three pairs swapped: tau (2 - 1) / 3;
    # the gaps moved by 0, 0.1 and 0.1. u: nothing replaced, left out.
    agreement = zoo.retrain_agreement(old, new)
    assert set(agreement) == {"t"}
    assert agreement["t"]["models"] == 3 and agreement["t"]["replaced"] == 3
    assert agreement["t"]["kendall_tau"] == pytest.approx(1 / 3)
    assert agreement["t"]["mean_abs_gap_change"] == pytest.approx(0.2 / 3)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        zoo.run("huge", pathlib.Path("/nonexistent"))


def test_manifest_records_preset_seeds_and_code_version(tiny):
    root, _ = tiny
    manifest = json.loads((root / "features" / "tiny" / "manifest.json").read_text())
    entry = manifest["tasks"]["tiny"]
    assert entry["task"]["grid"] == TINY_GRID and entry["task"]["source"] == "fmnist"
    assert entry["seeds"]["data_subset_and_label_noise"] == 0
    assert entry["versions"]["extractor"] == 1
    assert len(entry["versions"]["git_commit"]) == 40
    in_task = json.loads((root / "pool" / "tiny" / zoo.MANIFEST).read_text())
    assert in_task["task"] == entry["task"]


def shifted(image, dy, dx):
    """`image` moved by (dy, dx) pixels, zeros shifted in."""
    padded = np.pad(image, [(2, 2), (2, 2), (0, 0)])
    return padded[2 - dy:30 - dy, 2 - dx:30 - dx]


@pytest.mark.parametrize("shift, flip", [(2, True), (1, False)])
def test_augmentation_shifts_and_flips_each_image_reproducibly(shift, flip):
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1)).astype(np.float32)
    y = np.arange(16, dtype=np.int32)

    def first_batch(augment):
        return next(training.batches(x, y, 16, seed=3, augment=augment).as_numpy_iterator())
    first = first_batch((shift, flip))
    np.testing.assert_array_equal(first[0], first_batch((shift, flip))[0])
    moved = flipped = 0
    for image, label in zip(*first):
        original = x[label]
        variants = {(mirror, dy, dx): shifted(image_, dy, dx)
                    for mirror, image_ in ((False, original), (True, original[:, ::-1]))
                    for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)
                    if flip or not mirror}
        matches = [key for key, v in variants.items() if np.array_equal(image, v)]
        assert matches
        moved += not np.array_equal(image, original)
        flipped += all(mirror for mirror, _, _ in matches)
    assert moved > 8 and (flipped > 2) == flip
    plain = first_batch(None)
    np.testing.assert_array_equal(plain[0], x[plain[1]])


def test_a_field_added_to_tasks_later_matches_committed_definitions_at_its_default():
    committed = {k: v for k, v in TINY.definition().items() if k != "augment"}
    assert TINY.same_definition(committed) and TINY.same_definition(TINY.definition())
    assert not dataclasses.replace(TINY, augment=(1, False)).same_definition(committed)
    assert not dataclasses.replace(TINY, epochs=3).same_definition(committed)


def test_a_changed_preset_is_refused(tiny, monkeypatch):
    root, _ = tiny
    changed = dataclasses.replace(PRESETS["tiny"], tasks=(dataclasses.replace(TINY, epochs=3),))
    monkeypatch.setitem(PRESETS, "tiny", changed)
    with pytest.raises(ValueError, match="task 'tiny' of preset 'tiny' has changed"):
        zoo.run("tiny", root / "pool", workers=1, features=root / "features", progress=False)


def test_weights_do_not_depend_on_the_number_of_workers(tiny, tmp_path):
    root, rows = tiny
    again = zoo.run("tiny", tmp_path / "pool", workers=2, features=tmp_path / "features",
                    progress=False)
    digests = {r["model_id"]: r["weights_digest"] for r in rows}
    assert {r["model_id"]: r["weights_digest"] for r in again} == digests


def test_an_old_manifest_beside_the_task_folders_is_moved_into_them(tiny):
    root, _ = tiny
    (root / "pool" / "manifest.json").write_text("{}")
    zoo.run("tiny", root / "pool", workers=1, features=root / "features", progress=False)
    assert sorted(p.name for p in (root / "pool").iterdir()) == ["tiny"]
    assert (root / "pool" / "tiny" / zoo.MANIFEST).is_file()


def test_a_run_without_its_data_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMOGEN_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST not found"):
        zoo.run("tiny", tmp_path / "pool", workers=1, features=tmp_path / "features",
                progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_only_the_committed_pools_write_into_features_cache(tmp_path):
    assert zoo.features_folder("nin", tmp_path) == pathlib.Path("features_cache")
    assert zoo.features_folder("corpus") == pathlib.Path("features_cache")
    assert zoo.features_folder("tiny", tmp_path) == zoo.features_folder("demo", tmp_path) == \
        tmp_path / "features"
    with pytest.raises(ValueError, match="tiny is a scratch preset.*pass --out DIR"):
        zoo.features_folder("tiny")
