"""A practitioner's CSV files become a ValuationDataset, or a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from dvrl_env.tabular import HELD_OUT_FRACTION, TableError, load_csv


def write_csv(path, rows, header=("age", "city", "y")):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def people(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(18, 80)), ["paris", "oslo", "rome"][i % 3], ["no", "yes"][i % 2])
            for i in range(n)]


def test_numeric_scaled_categorical_one_hot_and_labels_named(tmp_path):
    train = write_csv(tmp_path / "train.csv", people(50))
    valid = write_csv(tmp_path / "valid.csv", people(20, seed=1))
    test = write_csv(tmp_path / "test.csv", people(20, seed=2))
    ds = load_csv(train, "y", valid=valid, test=test, noise_rate=0.2)
    assert ds.meta["feature_names"] == ["age", "city=oslo", "city=paris", "city=rome"]
    assert ds.meta["label_names"] == ["no", "yes"] and ds.num_classes == 2
    assert ds.x_train[:, 0].min() == 0.0 and ds.x_train[:, 0].max() == 1.0
    assert np.all(ds.x_train[:, 1:].sum(axis=1) == 1)
    assert ds.n_train == 50 and ds.noisy_mask.sum() == 10 and ds.meta["held_out"] == []
    assert ds.meta["train_rows"] == list(range(50))


def test_without_valid_and_test_files_a_fraction_is_held_out(tmp_path):
    train = write_csv(tmp_path / "train.csv", people(100))
    ds = load_csv(train, "y")
    n_out = round(HELD_OUT_FRACTION * 100)
    assert ds.meta["held_out"] == ["valid", "test"]
    assert len(ds.y_valid) == n_out and len(ds.y_test) == n_out and ds.n_train == 100 - 2 * n_out
    assert len(set(ds.meta["train_rows"])) == ds.n_train


@pytest.mark.parametrize(
    "rows, label, message",
    [
        (people(30), "income", r"Label column 'income' is not in .*columns are \['age', 'city'"),
        ([(20 + i, "oslo", "yes") for i in range(30)], "y", "single class"),
        ([*people(29), ("abc", "oslo", "no")], "y", r"row 30, column 'age': the value 'abc'"),
        ([*people(29), ("", "oslo", "no")], "y", r"row 30, column 'age': an empty cell"),
    ],
)
def test_bad_tables(tmp_path, rows, label, message):
    train = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(TableError, match=message):
        load_csv(train, label)


def test_missing_and_ragged_files(tmp_path):
    with pytest.raises(TableError, match="does not exist"):
        load_csv(tmp_path / "nope.csv", "y")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,y\n1,2,x\n1,2\n")
    with pytest.raises(TableError, match="data row 2: 2 fields, but the header has 3"):
        load_csv(ragged, "y")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(TableError, match="Cannot read"):
        load_csv(binary, "y")
