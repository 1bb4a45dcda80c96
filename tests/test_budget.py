"""The budget curve: `demogen budget` on a real tiny task, and the corpus's curve from the side
files (demogen_fit.budget)."""

import json

import numpy as np
import pytest

from demogen.cli import main
from demogen.frozen import coefficients
from demogen.measure import features, perturbation
from demogen.measure.signature import Margins
from demogen_fit import budget, sample_size, tables, transfer
from demogen_fit import candidates as registry

COUNTS = [128, 256, 2048]  # below, at and above the tiny task's 256 training examples


@pytest.fixture(scope="module")
def two_part(tmp_path_factory, corpus):
    """A two-part predictor file (`two_part_input` fitted on the corpus): its own
    training-accuracy sample of 4,096 beside the margin sample's 2,048."""
    from demogen_fit import freeze

    path = tmp_path_factory.mktemp("two_part") / "two_part_input.json"
    freeze.write(transfer.fit_candidate(corpus, "two_part_input")[0], path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, two_part):
    from demogen_fit import zoo

    root = tmp_path_factory.mktemp("budget")
    zoo.run("tiny", root / "pool", workers=1, features=root / "features", progress=False)
    out = root / "out"
    assert main(["budget", "--tasks", str(root / "pool" / "tiny"), "--coefficients",
                 str(two_part), "--n-examples", *map(str, COUNTS), "--out", str(out)]) == 0
    return root, json.loads((out / "budget.json").read_text())


@pytest.fixture(scope="module")
def corpus():
    return tables.read_sources([tables.CORPUS])


def own_predictions(root, frozen):
    """{model id: prediction} of a frozen predictor object for every tiny model."""
    from demogen.competition import pgdl
    from demogen.frozen.predictor import predict

    task = root / "pool" / "tiny"
    data = pgdl.load_dataset(task, "train")
    return {i: predict(frozen, pgdl.load_model(task, i), data) for i in pgdl.model_ids(task)}


def test_one_point_per_count_whole_set_marked_and_the_plot_written(tiny, two_part):
    root, result = tiny
    assert result["predictor"] == str(two_part) and result["default"] == 2048
    assert result["n_train"] == {"tiny": 256} and result["n_models"] == 8
    points = result["points"]
    assert [p["n_examples"] for p in points] == COUNTS
    assert [p["whole_set"] for p in points] == [[], ["tiny"], ["tiny"]]
    assert [p["train_accuracy_examples"] for p in points] == [256, 512, 4096]
    assert [p["default"] for p in points] == [False, False, True]
    assert all(p["seconds_per_model"] > 0 for p in points)
    assert all(p["tasks"]["tiny"]["n_models"] == 8 for p in points)
    assert (root / "out" / "budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_shipped_default_is_the_predictor_without_a_file(tiny, capsys):
    root, _ = tiny
    capsys.readouterr()
    assert main(["budget", "--tasks", str(root / "pool" / "tiny"), "--n-examples", "256"]) == 0
    lines, shipped = capsys.readouterr().out.splitlines(), coefficients.load()
    assert lines[0].startswith(f"selected ({shipped.name}) on 1 task(s), 8 models")
    assert lines[2].split()[:2] == ["256", "512" if shipped.two_part else "-"]


def test_a_point_is_the_predictor_with_those_samples(tiny, two_part, tmp_path, capsys):
    """The default point's predictions are the predictor file's and score what `demogen
    score` gives them; the smallest point's are those of a predictor file written with its
    sample sizes (128 margin examples, 256 for the training accuracy), and differ."""
    root, result = tiny
    default = own_predictions(root, coefficients.load(two_part))
    assert result["points"][-1]["predictions"] == {"tiny": default}
    small = json.loads(two_part.read_text())
    small["extractor"]["n_examples"], small["train_accuracy"]["n_examples"] = 128, 256
    smallest = own_predictions(root, coefficients.from_dict(small))
    assert result["points"][0]["predictions"] == {"tiny": smallest} and smallest != default
    (tmp_path / "tiny.predict").write_text(json.dumps(
        {f"model_{i}": value for i, value in default.items()}))
    capsys.readouterr()
    assert main(["score", "--predictions", str(tmp_path), "--tasks",
                 str(root / "pool" / "tiny"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    for measure in ("cmi", "kendall_tau", "granulated_psi"):
        assert result["points"][-1][measure] == scored["mean"][measure]
    assert result["points"][-1]["tasks"]["tiny"] == scored["tasks"]["tiny"]


def test_at_count_replaces_the_sample_sizes_only(two_part):
    selected, paper = coefficients.load(two_part), coefficients.load(predictor="paper_nin")
    assert (selected.extractor["n_examples"], selected.train_accuracy["n_examples"]) == (2048, 4096)
    small = budget.at_count(selected, 300)
    assert small.extractor == {**selected.extractor, "n_examples": 300}
    assert small.train_accuracy == {"n_examples": 600, "seed": selected.train_accuracy["seed"]}
    assert small.as_dict() | {"extractor": None, "train_accuracy": None} == \
        selected.as_dict() | {"extractor": None, "train_accuracy": None}
    assert budget.at_count(paper, 512).train_accuracy is None
    assert budget.at_count(paper, 512).extractor == {**paper.extractor, "n_examples": 512}


def test_bad_counts_and_tasks_of_one_model_are_clear_errors(tmp_path, capsys):
    task = tmp_path / "one"
    task.mkdir()
    (task / "model_configs.json").write_text(json.dumps(
        {"0": {"hparams": {}, "metrics": {"train_acc": 1.0, "test_acc": 0.9}}}))
    with pytest.raises(SystemExit):
        main(["budget", "--tasks", str(task), "--n-examples"])
    assert "expected at least one argument" in capsys.readouterr().err
    assert main(["budget", "--tasks", str(task), "--n-examples", "512", "256"]) == 2
    assert "must be increasing positive integers, got [512, 256]" in capsys.readouterr().err
    assert main(["budget", "--tasks", str(task), "--n-examples", "256", "256"]) == 2
    assert "none twice" in capsys.readouterr().err
    assert main(["budget", "--tasks", str(task)]) == 2
    assert "at least 2 models per task; one has 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="increasing"):
        budget.task_curve(task, coefficients.load(), [])


def test_the_whole_sample_gives_the_table_features(corpus):
    c = transfer.Corpus(corpus)
    files = sample_size.side_files(c)
    groups = ["qrt", "qrt.unnorm", "qrt.signed", "mom", "out", "acc", "tv"]
    columns = [name for g in groups for name in features.GROUPS[g].names]
    for task, rows in c.rows.items():
        for row, (measurement, _) in list(zip(rows, files[task]))[:3]:
            n = len(measurement.margins.output_margin)
            values = budget.recompute(measurement, np.arange(n), groups)
            np.testing.assert_allclose([values[k] for k in columns],
                                       c.table.loc[row, columns].to_numpy(dtype=np.float64),
                                       rtol=1e-12, atol=0)


def test_the_whole_sample_gives_the_kept_shares_of_the_table(tiny):
    from demogen.competition import pgdl

    root, _ = tiny
    table = tables.read_sources([root / "features" / "tiny.csv"]).set_index("model_id")
    task = root / "pool" / "tiny"
    data = pgdl.load_dataset(task, "train")
    groups = ["keep", "qrt", "acc"]
    columns = [name for g in groups for name in features.GROUPS[g].names]
    for model_id in pgdl.model_ids(task)[:2]:
        measurement = features.measure(pgdl.load_model(task, model_id), data,
                                       [features.MARGINS, "perturbation"])
        n = len(measurement.margins.output_margin)
        assert measurement.perturbation.correct.shape[1] == n  # one sample for both
        values = budget.recompute(measurement, np.arange(n), groups)
        np.testing.assert_allclose([values[k] for k in columns],
                                   table.loc[model_id, columns].to_numpy(dtype=np.float64),
                                   rtol=1e-12, atol=0)


def hand_margins():
    return Margins(gradient_norms=np.array([[1.0, 1, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1],
                                            [1, 1, 1, 1]]),
                   total_variation=np.array([1.0, 4.0, 1.0, 1.0]),
                   output_margin=np.array([1.0, -1.0, 2.0, 4.0]),
                   layers=["input", "a", "b", "c"], settings={"n_sampled": 4}, notes=[])


def test_a_hand_checked_subsample():
    measurement = features.Measurement({features.MARGINS: hand_margins()})
    values = budget.recompute(measurement, np.array([3, 3, 0, 1]), ["qrt", "out", "acc"])
    # the subsample's output margins are 4, 4, 1, -1: three correct
    assert values["acc.sample"] == 0.75
    assert values["out.q2"] == 2.5 and values["out.q1"] == 0.5
    # input: distances 4, 4, 1 (norm 1, total variation 1): median 4, first quartile 2.5
    assert values["qrt.input.q2"] == 4.0 and values["qrt.input.q1"] == 2.5
    # h1: distances 2, 2, 0.5 divided by sqrt(4)
    assert values["qrt.h1.q2"] == 1.0 and values["qrt.h1.lower_fence"] == 0.25


def test_hand_checked_kept_shares_of_a_subsample():
    correct = np.array([[1, 1, 1, 0, 1],    # clean
                        [1, 0, 1, 0, 1],    # noise/input/0.1
                        [1, 0, 0, 1, 1],    # noise/input/0.3
                        [0, 0, 0, 1, 1]],   # noise/input/1
                       dtype=bool)
    responses = perturbation.Responses(
        ("clean", "noise/input/0.1", "noise/input/0.3", "noise/input/1"), correct,
        np.array([1.0, 0.5, 0.2, -0.1]), np.array([1.0, 2.0, 3.0]),
        ("input", "a", "b", "c"), {}, ())
    measurement = features.Measurement({"perturbation": responses})
    values = budget.recompute(measurement, np.array([0, 1, 1, 4]), ["keep"])
    # clean-correct examples of the subsample: 0, 1, 1, 4; kept at 0.1: 0, 4 (1/2); at 0.3:
    # 0, 4 (1/2); at 1: 4 (1/4); the area under (0, 1), (0.1, .5), (0.3, .5), (1, .25), over 1
    area = (1 + 0.5) / 2 * 0.1 + 0.5 * 0.2 + (0.5 + 0.25) / 2 * 0.7
    assert values["keep.noise.input.auc"] == pytest.approx(area, abs=1e-15)
    assert np.isnan(values["keep.noise.h1.auc"])  # not measured
    whole = budget.recompute(measurement, np.arange(5), ["keep"])
    assert whole["keep.noise.input.auc"] == pytest.approx(
        (1 + 0.75) / 2 * 0.1 + (0.75 + 0.5) / 2 * 0.2 + (0.5 + 0.25) / 2 * 0.7, abs=1e-15)
    with pytest.raises(ValueError, match="no perturbation values"):
        budget.recompute(features.Measurement({features.MARGINS: hand_margins()}),
                         np.arange(4), ["keep"])


def test_draws_differ_by_seed_and_cover_the_whole_sample_at_its_size():
    first = budget.draw(np.random.default_rng(0), 100, 1000)
    second = budget.draw(np.random.default_rng(1), 100, 1000)
    assert len(first) == 100 and first.min() >= 0 and first.max() < 1000
    assert not np.array_equal(first, second)
    assert np.array_equal(budget.draw(np.random.default_rng(0), 1000, 1000), np.arange(1000))
    assert np.array_equal(budget.draw(np.random.default_rng(0), 4096, 600), np.arange(600))


def test_corpus_curve(corpus):
    names = ["input_margin", "two_part_input"]
    result = budget.corpus_curve(corpus, names, [256, 4096], n_seeds=2)
    c = transfer.Corpus(corpus)
    for name in names:
        evaluator = transfer.Evaluator(c, registry.get([name])[0])
        held_out, _ = evaluator.leave_one_out(c.units("cluster"))
        expected = {m: np.mean([s[m] or 0.0 for s in held_out.values()])
                    for m in ("kendall_tau", "cmi")}
        assert result["full"][name] == pytest.approx(expected, rel=1e-12)
        low, high = result["curves"][name]
        assert low["whole_set"] == [] and high["whole_set"] == sorted(c.tasks)
        assert low["kendall_tau_se"] > 0 and low["cmi_se"] > 0
        assert high["kendall_tau_se"] == high["cmi_se"] == 0
        assert high["kendall_tau"] == pytest.approx(result["full"][name]["kendall_tau"])
        assert result["smallest_within_one_se"][name]["kendall_tau"] in (256, 4096)
    assert [p["train_accuracy_examples"] for p in result["curves"]["two_part_input"]] == \
        [512, 8192]
    assert result["curves"]["input_margin"][0]["train_accuracy_examples"] is None
    assert set(result["n_train"].values()) == {600, 1000, 2000}


def test_corpus_curve_refuses_bad_counts_seeds_and_tasks_of_one_model(corpus):
    for counts in ([], [512, 256], [256, 256], [0, 256]):
        with pytest.raises(ValueError, match="increasing positive integers"):
            budget.corpus_curve(corpus, ["input_margin"], counts)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        budget.corpus_curve(corpus, ["input_margin"], [256], n_seeds=1)
    one = corpus[(corpus["task"] != "mlp_digits") | (corpus["model_id"] == "0")]
    with pytest.raises(ValueError, match="at least 2 models per task; mlp_digits has 1"):
        budget.corpus_curve(one, ["input_margin"], [256])
    for name, group in (("winner", "winner"), ("rank_perturb_many", "db")):
        with pytest.raises(ValueError, match=f"the groups .*{group}.* are not kept per example"):
            budget.corpus_curve(corpus, [name], [256])


def test_smallest_within_one_se():
    points = [{"n_examples": n, "kendall_tau": t, "kendall_tau_se": se, "cmi": c, "cmi_se": 0.0}
              for n, t, se, c in ((256, 0.40, 0.05, 10.0), (512, 0.46, 0.05, 19.0),
                                  (1024, 0.5, 0.0, 20.0))]
    assert budget.smallest_within_one_se(points, {"kendall_tau": 0.5, "cmi": 20.0}) == \
        {"kendall_tau": 512, "cmi": 1024}
    assert budget.smallest_within_one_se(points, {"kendall_tau": 0.6, "cmi": 20.0}) == \
        {"kendall_tau": None, "cmi": 1024}
