"""The study helpers (benchmarks/studies/common.py): intervals, resume, tables. No study
is run here; one tiny real run checks the row a study writes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.studies import (
    common,
    figures,
    learnability,
    marginal_information,
    non_mdp,
    weak_signal,
)
from tests.fake_torchvision import write_fake_cifar10, write_fake_fashion_mnist


def test_mean_ci_is_the_student_t_interval():
    mean, half, n = common.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    # t(0.975, 4) = 2.7764451, s = sqrt(2.5), half = t * s / sqrt(5)
    assert (mean, n) == (3.0, 5) and half == pytest.approx(2.7764451 * np.sqrt(0.5), rel=1e-6)
    assert common.mean_ci([0.5, float("nan"), 0.5])[:2] == (0.5, 0.0)  # NaN left out
    assert np.isnan(common.mean_ci([0.7])[1]) and common.mean_ci([])[2] == 0
    assert common.fmt(0.91234, 0.0131) == "0.912 ± 0.013"
    assert common.fmt(0.25, float("nan"), signed=True) == "+0.250 ± n/a"
    assert common.cell([]) == "n/a"


def _spec(seed: int, updates: int = 5, study: str = "s") -> common.RunSpec:
    return common.RunSpec(study, {"dataset": "toy", "agent": "a"}, seed, "env", "random",
                          updates)


def test_run_all_resumes_and_reruns_changed_settings(tmp_path, monkeypatch):
    calls = []

    def fake_execute(spec, before_learning=None):
        calls.append((spec.seed, spec.updates))
        return {"study": spec.study, "config": spec.config, "seed": spec.seed,
                "spec": spec.spec_hash, **spec.fields, "auroc": 0.5 + spec.seed / 10,
                "gap": 0.1, "robust_acc": 0.8, "seconds": 1.0, "curve": "{}"}

    monkeypatch.setattr(common, "execute", fake_execute)
    path = tmp_path / "s.csv"
    common.run_all([_spec(0)], path)  # a study stopped after its first run
    rows = common.run_all([_spec(0), _spec(1)], path)
    assert calls == [(0, 5), (1, 5)]  # seed 0 was not run again
    assert [r["seed"] for r in rows] == [0, 1] and rows[1]["auroc"] == pytest.approx(0.6)
    common.run_all([_spec(0), _spec(1)], path)
    assert len(calls) == 2  # everything done: nothing runs
    rows = common.run_all([_spec(0, updates=9)], path)  # other settings: run again
    assert calls[-1] == (0, 9) and rows[0]["spec"] == _spec(0, 9).spec_hash
    assert len(common.read_rows(path)) == 3  # the old rows stay in the file
    assert _spec(0).config == "dataset=toy;agent=a"


def test_a_number_like_spec_hash_is_still_recognised_as_done(tmp_path, monkeypatch):
    """A hash such as 69007202e6 once read back as a float, so its run was redone (and
    its row duplicated) on every resume."""
    path = tmp_path / "s.csv"
    spec = _spec(0)
    monkeypatch.setattr(type(spec), "spec_hash", property(lambda self: "69007202e6"))
    common.write_rows(path, [{"study": spec.study, "config": spec.config, "seed": 0,
                              "spec": "69007202e6", "auroc": 0.5}])
    assert common.read_rows(path)[0]["spec"] == "69007202e6"
    monkeypatch.setattr(common, "execute", lambda *a, **k: pytest.fail("ran a done run"))
    assert common.run_all([spec], path)[0]["auroc"] == 0.5


def test_markdown_table_and_paired_differences():
    rows = [{"dataset": "adult", "agent": "marginal", "marginal_info": "on", "seed": s,
             "auroc": 0.9, "gap": 0.5, "robust_acc": 0.8, "updates": 0, "fits": 0,
             "seconds": 1.0} for s in (0, 1)]
    rows += [{"dataset": "adult", "agent": "ppo", "marginal_info": mi, "seed": s,
              "auroc": a, "gap": 0.0, "robust_acc": 0.8, "updates": 40, "seconds": 3.0}
             for mi, s, a in (("on", 0, 0.8), ("on", 1, 0.7), ("off", 0, 0.5), ("off", 1, 0.5))]
    text = marginal_information.table(rows)
    lines = text.splitlines()
    assert lines[0].startswith("| dataset | agent | marginal info |")
    assert lines[1] == "|" + "---|" * 11
    assert "| adult | marginal | on | 0 | 0 | 2 | 0.900 ± 0.000 | - |" in text
    # RL adds: (0.8 - 0.9, 0.7 - 0.9) -> mean -0.15, half t(0.975, 1) * 0.0707 / 1;
    # the ppo rows predate fit counting: their fits are n/a
    assert "| adult | ppo | on | 40 | n/a | 2 | 0.750 ± 0.635 | -0.150 ± 0.635 |" in text
    assert "| adult | ppo | off | 40 | n/a | 2 | 0.500 ± 0.000 | -0.400 ± 0.000 |" in text
    assert common.markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"


def test_study_specs_have_unique_keys():
    args = SimpleNamespace(quick=True, updates=None, draws=None, noise_rate=0.2)
    lists = [non_mdp.specs([0, 1], {}, True, 0.2),
             weak_signal.specs(args, [0, 1], {"n_train": 300}),
             marginal_information.specs([0, 1], {}, True, 0.2),
             learnability.specs({"adult": ("DataValuation-Adult-v0", {})}, [0, 1], {}, True,
                                0.2)]
    for specs in lists:
        assert len({s.key for s in specs}) == len(specs)
    assert len(lists[0]) == 2 * 4 * 4 * 2 and len(lists[1]) == 2 * 2 * 5 * 2
    assert {s.env_kwargs.get("reset_mode") for s in lists[0]} == {"step", "episode", "never"}


@pytest.mark.filterwarnings("ignore:The validation set has no example")  # tiny files
def test_image_sets_join_every_study_only_where_their_files_are(tmp_path, monkeypatch):
    monkeypatch.setenv("DVRL_DATA", str(tmp_path))
    notes: list[str] = []
    sets = common.study_datasets(False, notes)
    assert set(sets) == {"adult", "digits"} and len(notes) == 2
    assert "CIFAR-10 files not found" in notes[0] and "download=True" in notes[0]
    assert common.skipped_section(notes).startswith("Skipped: DataValuation-CIFAR10-v0")

    # tiny files in the real formats; the CIFAR-10 ones fail its checksums, so are skipped
    write_fake_cifar10(tmp_path, n_train_per_batch=6, n_test=20, seed=0)
    write_fake_fashion_mnist(tmp_path, n_train=30, n_test=20, seed=0)
    notes = []
    sets = common.study_datasets(True, notes)
    assert len(notes) == 1 and "checksum" in notes[0]
    assert set(sets) == {"adult", "digits", "fashion_mnist"}
    assert sets["fashion_mnist"] == ("DataValuation-FashionMNIST-v0", {
        "encoder": "resnet18", "download": False, **common.IMAGE_SIZES_QUICK})
    specs = non_mdp.specs([0], {"n_train": 300}, True, 0.2, sets)
    images = [s for s in specs if s.fields["dataset"] == "fashion_mnist"]
    assert len(images) == len(specs) // 3
    assert all(s.env_kwargs["encoder"] == "resnet18" and s.env_kwargs["n_train"] == 300
               for s in images)
    args = SimpleNamespace(quick=False, updates=None, draws=None, noise_rate=0.2)
    batches = {s.fields["B"] for s in weak_signal.specs(args, [0], {}, sets)
               if s.fields["dataset"] == "fashion_mnist"}
    assert batches == {64, 256, common.IMAGE_SIZES["n_train"]}
    assert {s.fields["dataset"] for s in marginal_information.specs([0], {}, True, 0.2, sets)} \
        == set(sets)


@pytest.mark.filterwarnings("ignore:The validation set has no example")  # tiny files
def test_pretrained_feature_rows_join_where_images_and_weights_are(tmp_path, monkeypatch):
    from dvrl_env.data import encoders

    monkeypatch.setenv("DVRL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    notes: list[str] = []
    assert set(common.study_datasets(False, notes, pretrained=True)) == {"adult", "digits"}
    assert len(notes) == 2 and not any("weights" in n for n in notes)  # no images: no rows

    write_fake_fashion_mnist(tmp_path / "data", n_train=30, n_test=20, seed=0)
    resnet = encoders.PRETRAINED["resnet18-imagenet"].path()  # only looked for, not read
    resnet.parent.mkdir(parents=True)
    resnet.write_bytes(b"weights")
    notes = []
    sets = common.study_datasets(False, notes, pretrained=True)
    assert set(sets) == {"adult", "digits", "fashion_mnist", "fashion_mnist-resnet18-imagenet"}
    assert sets["fashion_mnist-resnet18-imagenet"][1]["encoder"] == "resnet18-imagenet"
    missing = [n for n in notes if n.startswith("inception_v3-imagenet features skipped")]
    assert len(missing) == 1 and "inception_v3_google-0cc3c7bd.pth" in missing[0]
    assert "download=True" in missing[0]
    assert {s.fields["dataset"] for s in marginal_information.specs([0], {}, False, 0.2, sets)} \
        == set(sets)

    labels = set(learnability.feature_sets(False, []))
    assert {"fashion_mnist (resnet18-imagenet)", "fashion_mnist (resnet18)"} <= labels
    assert "fashion_mnist (inception_v3-imagenet)" not in labels
    assert set(learnability.feature_sets(True, [])) == {
        "adult (tabular)", "digits (pixels)", "fashion_mnist (lenet)",
        "fashion_mnist (resnet18-imagenet)"}


def test_execute_writes_scores_and_a_curve(tmp_path):
    spec = common.RunSpec("t", {"agent": "random"}, 0, "DataValuation-Digits-v0", "random", 2,
                          {"n_train": 100, "predictor": "logistic", "predictor_epochs": 2},
                          log_points=2)
    row = common.execute(spec, before_learning=lambda env, s: {"extra": 1.5})
    assert 0.3 < row["auroc"] < 0.7 and 0 < row["robust_acc"] <= 1 and row["extra"] == 1.5
    curve = json.loads(row["curve"])
    assert curve["step"] == [0, 1, 2] and len(curve["auroc"]) == 3
    common.write_rows(tmp_path / "t.csv", [row])
    back = common.read_rows(tmp_path / "t.csv")[0]
    assert back["auroc"] == pytest.approx(row["auroc"]) and back["agent"] == "random"
    figures.plot_curves([back], ["agent"], "agent", tmp_path / "c.png", "curves")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert row["fits"] == 0  # random values step no env


def test_execute_records_the_predictor_fits_learning_used():
    spec = common.RunSpec("t", {"agent": "reinforce"}, 0, "DataValuation-Digits-v0",
                          "reinforce", 3, {"n_train": 100, "predictor": "logistic",
                                           "predictor_epochs": 2}, log_points=1)
    assert common.execute(spec)["fits"] == 3 + 1  # one per update and the fixed baseline


def test_line_and_bar_figures_are_written(tmp_path):
    figures.plot_lines({"B=64": ([1, 2, 4], [0.1, 0.2, 0.4], [0.01, float("nan"), 0.02])},
                       tmp_path / "l.png", title="t", xlabel="K", ylabel="SNR", logx=True)
    figures.plot_bars({"adult": {"on": (["a", "b"], [0.9, 0.6], [0.01, 0.02])}},
                      tmp_path / "b.png", title="t", ylabel="AUROC",
                      hlines={"adult": (0.93, "marginal")})
    assert (tmp_path / "l.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0
