"""A practitioner's CSV files become a ValuationDataset, or a clear error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from dvrl_env.data.tabular import HELD_OUT_FRACTION, MANY_CATEGORIES, TableError, load_csv


def write_csv(path, rows, header=("age", "city", "y")):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def people(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(18, 80)), ["paris", "oslo", "rome"][i % 3], ["no", "yes"][i % 2])
            for i in range(n)]


def three_files(tmp_path, train, valid, test, header=("age", "city", "y")):
    return [write_csv(tmp_path / f"{name}.csv", rows, header)
            for name, rows in (("train", train), ("valid", valid), ("test", test))]


def test_numeric_scaled_categorical_one_hot_and_labels_named(tmp_path):
    train, valid, test = three_files(tmp_path, people(50), people(20, seed=1), people(20, seed=2))
    ds = load_csv(train, "y", valid=valid, test=test, noise_rate=0.2)
    assert ds.meta["feature_names"] == ["age", "city=oslo", "city=paris", "city=rome"]
    assert ds.meta["label_names"] == ["no", "yes"] and ds.num_classes == 2
    assert ds.x_train[:, 0].min() == 0.0 and ds.x_train[:, 0].max() == 1.0
    assert np.all(ds.x_train[:, 1:].sum(axis=1) == 1)
    assert ds.n_train == 50 and ds.noisy_mask.sum() == 10 and ds.meta["held_out"] == []
    assert ds.meta["train_lines"] == list(range(2, 52))  # the header is line 1
    assert ds.meta["columns"] == {"age": {"kind": "numeric", "missing": 0},
                                  "city": {"kind": "categorical", "missing": 0, "categories": 3}}


def test_without_valid_and_test_files_a_fraction_is_held_out(tmp_path):
    train = write_csv(tmp_path / "train.csv", people(100))
    ds = load_csv(train, "y")
    n_out = round(HELD_OUT_FRACTION * 100)
    assert ds.meta["held_out"] == ["valid", "test"]
    assert len(ds.y_valid) == n_out and len(ds.y_test) == n_out and ds.n_train == 100 - 2 * n_out
    lines = ds.meta["train_lines"]
    assert lines == sorted(set(lines)) and len(lines) == ds.n_train
    assert set(lines) <= set(range(2, 102))


@pytest.mark.parametrize(
    "rows, label, message",
    [
        (people(30), "income", r"Label column 'income' is not in .*columns are \['age', 'city'"),
        ([(20 + i, "oslo", "yes") for i in range(30)], "y", "single class"),
        ([*people(29), ("abc", "oslo", "no")], "y",
         r"train.csv, line 31, column 'age': the value 'abc' in a numeric column \(97% \(29 of 30\)"
         r".*fix it, or declare it missing with missing_values=\['abc'\] "
         r"\(dvrl value --missing-value abc\)"),
        ([*people(29), ("two words", "oslo", "no")], "y",
         r"missing_values=\['two words'\] \(dvrl value --missing-value 'two words'\)"),
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
    with pytest.raises(TableError, match="ragged.csv, line 3: 2 fields, but the header has 3"):
        load_csv(ragged, "y")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(TableError, match="Cannot read"):
        load_csv(binary, "y")


@pytest.mark.parametrize(
    "header, message",
    [
        ("x1,x1,color,label", r"train.csv: column name 'x1' appears twice in the header "
                              r"\(columns 1 and 2\); rename one of them\."),
        ("x1,b,x1,x1,b,label", r"'x1' appears 3 times in the header \(columns 1, 3 and 4\); "
                               r"column name 'b' appears twice in the header \(columns 2 and 5\); "
                               r"give every column its own name\."),
        ("x1,color,,label", r"train.csv: column 3 has no name"),
    ],
)
def test_duplicated_or_empty_header_names_are_refused(tmp_path, header, message):
    width = header.count(",") + 1
    rows = [(*[str(i)] * (width - 1), ["a", "b"][i % 2]) for i in range(20)]
    train = write_csv(tmp_path / "train.csv", rows, header=header.split(","))
    with pytest.raises(TableError, match=message):
        load_csv(train, "label")


def test_numeric_missing_cells_take_the_training_median_and_an_indicator(tmp_path):
    train, valid, test = three_files(
        tmp_path,
        [(10, "oslo", "yes"), (20, "paris", "no"), ("", "rome", "yes"), (40, "oslo", "no"),
         ("NA", "paris", "yes"), (30, "rome", "no")],
        [(" ? ", "oslo", "yes"), (40, "paris", "no"), (40, "rome", "no")],
        [(10, "rome", "yes"), (20, "oslo", "no")],
    )
    ds = load_csv(train, "y", valid=valid, test=test)
    # The training rows' median, 25 (not 20, the median over all files); range 10..40.
    assert ds.meta["feature_names"] == ["age", "age=missing", "city=oslo", "city=paris",
                                        "city=rome"]
    np.testing.assert_allclose(ds.x_train[:, 0], (np.array([10, 20, 25, 40, 25, 30]) - 10) / 30)
    np.testing.assert_array_equal(ds.x_train[:, 1], [0, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(ds.x_valid[:, :2], [[0.5, 1], [1, 0], [1, 0]])
    np.testing.assert_array_equal(ds.x_test[:, 1], [0, 0])
    assert ds.meta["columns"]["age"] == {"kind": "numeric", "missing": 3, "imputed": 25.0}


def test_numeric_missing_cells_only_outside_training_still_get_an_indicator(tmp_path):
    train, valid, test = three_files(tmp_path, people(20), [("null", "oslo", "yes"),
                                                            (30, "rome", "no")], people(4))
    ds = load_csv(train, "y", valid=valid, test=test)
    assert ds.meta["feature_names"][:2] == ["age", "age=missing"]
    assert ds.x_train[:, 1].sum() == 0 and list(ds.x_valid[:, 1]) == [1, 0]
    assert ds.meta["columns"]["age"]["missing"] == 1


def test_categorical_missing_cells_are_their_own_category(tmp_path):
    train, valid, test = three_files(
        tmp_path,
        [(20, "oslo", "yes"), (30, "", "no"), (40, "None", "yes"), (50, "unknown", "no")],
        [(20, "n/a", "yes"), (30, "oslo", "no")],
        [(20, "MISSING", "yes"), (30, "unknown", "no")],
    )
    ds = load_csv(train, "y", valid=valid, test=test)
    assert ds.meta["feature_names"] == ["age", "city=(missing)", "city=oslo", "city=unknown"]
    np.testing.assert_array_equal(ds.x_train[:, 1:], [[0, 1, 0], [1, 0, 0], [1, 0, 0],
                                                      [0, 0, 1]])
    np.testing.assert_array_equal(ds.x_valid[:, 1:], [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(ds.x_test[:, 1:], [[1, 0, 0], [0, 0, 1]])
    assert ds.meta["columns"]["city"] == {"kind": "categorical", "missing": 4, "categories": 3}


def test_a_literal_missing_category_is_not_merged_with_missing_cells(tmp_path):
    train = write_csv(tmp_path / "train.csv", [(20 + i, ["(missing)", "", "oslo"][i % 3],
                                                ["no", "yes"][i % 2]) for i in range(30)])
    with pytest.raises(TableError, match=r"Column 'city' has missing cells and cells that read "
                                         r"'\(missing\)'"):
        load_csv(train, "y")


def test_missing_values_declares_more_tokens(tmp_path):
    train = write_csv(tmp_path / "train.csv", [*people(29), ("unknown", "oslo", "no")])
    with pytest.raises(TableError, match=r"line 31, column 'age': the value 'unknown'.*"
                                         r"missing_values=\['unknown'\]"):
        load_csv(train, "y")
    ds = load_csv(train, "y", missing_values=[" Unknown "])
    assert ds.meta["feature_names"][:2] == ["age", "age=missing"]
    assert ds.meta["columns"]["age"]["missing"] == 1


def test_a_categorical_column_holding_numbers_warns(tmp_path):
    cities = ["1", "2", "oslo", "3", "rome", "4", "5", "paris", "6", "oslo", "", "bergen"]
    rows = [(20, city, ["no", "yes"][i % 2]) for i, city in enumerate(cities)]
    train, valid, test = three_files(tmp_path, rows, [(20, "7", "yes"), (30, "8", "no")],
                                     [(20, "9", "yes"), (30, "oslo", "no")])
    with pytest.warns(UserWarning, match=r"Column 'city' was one-hot encoded as categorical "
                                         r"although 60% \(9 of 15\) of its non-missing cells are "
                                         r"numbers; non-numeric values include 'oslo', 'rome', "
                                         r"'paris'\. ") as record:
        ds = load_csv(train, "y", valid=valid, test=test)
    assert record[0].filename == __file__  # shown at the caller, not inside dvrl_env
    assert ds.meta["columns"]["city"]["kind"] == "categorical"
    assert "city=1" in ds.meta["feature_names"]


def test_a_numeric_column_with_missing_words_is_one_feature_and_learns_as_well_as_clean(
        tmp_path):
    """The bug report: 20% 'missing' cells made a numeric column categorical, hundreds of
    one-hot features that a model cannot generalise from."""
    rng = np.random.default_rng(0)

    def rows(n, missing_share):
        """The label follows the dose; the same rows clean and with some doses missing."""
        dose = rng.uniform(0, 100, n)
        label = (dose + rng.normal(0, 5, n) > 50).astype(int)
        gone = rng.random(n) < missing_share
        clean = [(f"{d:.3f}", y) for d, y in zip(dose, label, strict=True)]
        return clean, [("missing", y) if g else (d, y)
                       for g, (d, y) in zip(gone, clean, strict=True)]

    def fit(name, train, valid, test):
        files = [write_csv(tmp_path / f"{name}_{split}.csv", r, ("dose", "y"))
                 for split, r in (("train", train), ("valid", valid), ("test", test))]
        ds = load_csv(files[0], "y", valid=files[1], test=files[2])
        model = LogisticRegression().fit(ds.x_train, ds.y_train)
        return ds, model.score(ds.x_test, ds.y_test)

    (train_clean, train), (valid_clean, valid) = rows(1000, 0.2), rows(200, 0.2)
    test, _ = rows(500, 0.0)
    n_missing = sum(d == "missing" for d, _ in train + valid)
    assert 200 < n_missing < 280
    _, clean = fit("clean", train_clean, valid_clean, test)
    ds, with_missing = fit("missing", train, valid, test)
    assert ds.num_features == 2 and ds.meta["feature_names"] == ["dose", "dose=missing"]
    assert ds.meta["columns"]["dose"]["missing"] == n_missing
    assert ds.meta["columns"]["dose"]["kind"] == "numeric"
    assert clean > 0.9 and abs(with_missing - clean) < 0.03


def test_numeric_labels_spelled_differently_are_one_class(tmp_path):
    train, valid, test = three_files(
        tmp_path, [(20 + i, "oslo", i % 2) for i in range(10)],
        [(20, "oslo", "1.0"), (30, "rome", "0.0")], [(20, "oslo", " 1 "), (30, "rome", "0e0")])
    ds = load_csv(train, "y", valid=valid, test=test)
    assert ds.num_classes == 2 and ds.meta["label_names"] == ["0", "1"]
    assert list(ds.y_valid) == [1, 0] and list(ds.y_test) == [1, 0]
    assert list(ds.y_train) == [i % 2 for i in range(10)]


def test_numeric_labels_are_sorted_as_numbers_and_named_shortest(tmp_path):
    labels = ["10", "9.0", "2.5", "-0.0"]
    rows = [(20 + i, "oslo", labels[i % 4]) for i in range(8)]
    train, valid, test = three_files(tmp_path, rows, rows, rows)
    ds = load_csv(train, "y", valid=valid, test=test)
    assert ds.meta["label_names"] == ["0", "2.5", "9", "10"]


@pytest.mark.parametrize("label", ["", "N/A"])
def test_a_missing_label_is_refused_with_its_line(tmp_path, label):
    train = write_csv(tmp_path / "train.csv", [*people(20), (30, "oslo", label), *people(5)])
    with pytest.raises(TableError, match=rf"train.csv, line 22: the label \(column 'y'\) is "
                                         rf"missing \({label!r}\)"):
        load_csv(train, "y")


def test_a_label_never_seen_in_training_is_refused(tmp_path):
    train, valid, test = three_files(tmp_path, people(20),
                                     [*people(5), (30, "oslo", "maybe")], people(5))
    with pytest.raises(TableError, match=r"valid.csv has label\(s\) \['maybe'\] that never occur "
                                         r"in the training rows of .*train.csv; every class "
                                         r"needs training points"):
        load_csv(train, "y", valid=valid, test=test)


def test_a_label_held_out_entirely_is_refused(tmp_path):
    rows = people(50)
    first_held_out = int(np.random.default_rng(0).permutation(50)[0])  # the draw of load_csv
    rows[first_held_out] = (30, "oslo", "maybe")
    train = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(TableError, match=r"train.csv \(the rows held out for valid\) has "
                                         r"label\(s\) \['maybe'\] that never occur"):
        load_csv(train, "y")


def test_many_categories_warn_and_drop_columns_removes_them(tmp_path):
    rows = [(f"p{i:03d}", *person) for i, person in enumerate(people(150))]
    train = write_csv(tmp_path / "train.csv", rows, header=("id", "age", "city", "y"))
    assert MANY_CATEGORIES < 150
    # 150 + 1 + 3 features over all 150 rows (training, held-out valid and test)
    with pytest.warns(UserWarning, match=r"Column 'id' has 150 categories: one-hot encoding "
                                         r"makes 154 features, a float64 training\+valid\+test "
                                         r"matrix of about 0\.2 MB\. If it is an identifier, "
                                         r"drop it with drop_columns=\['id'\] "
                                         r"\(dvrl value --drop-column id\)"):
        ds = load_csv(train, "y")
    assert ds.num_features == 154
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_csv(train, "y", drop_columns=["id"])
    assert ds.meta["feature_names"] == ["age", "city=oslo", "city=paris", "city=rome"]
    assert "id" not in ds.meta["columns"]


@pytest.mark.parametrize(
    "drop, message",
    [(["nope"], r"drop_columns names \['nope'\], not columns of .*train.csv"),
     (["y"], r"drop_columns names the label column 'y'"),
     (["age", "city"], r"no feature columns besides 'y'")],
)
def test_drop_columns_must_name_feature_columns(tmp_path, drop, message):
    train = write_csv(tmp_path / "train.csv", people(30))
    with pytest.raises(TableError, match=message):
        load_csv(train, "y", drop_columns=drop)


def test_a_bare_string_for_a_list_option_is_refused(tmp_path):
    train = write_csv(tmp_path / "train.csv", people(30))
    with pytest.raises(TypeError, match=r"missing_values takes a list of strings, e\.g\. "
                                        r"missing_values=\['unknown'\]"):
        load_csv(train, "y", missing_values="unknown")
    with pytest.raises(TypeError, match=r"drop_columns=\['city'\]"):
        load_csv(train, "y", drop_columns="city")


def test_line_numbers_count_the_header_and_blank_lines(tmp_path):
    # line 1 header, 2 a row, 3 blank, 4-5 one record with a quoted line break, 6-15 rows
    text = ("age,city,y\n20,oslo,yes\n\n30,\"new\nyork\",no\n"
            + "".join(f"{a},{c},{y}\n" for a, c, y in people(10)))
    train, valid, test = three_files(tmp_path, [], people(6, seed=1), people(6, seed=2))
    train.write_text(text)
    ds = load_csv(train, "y", valid=valid, test=test)
    assert ds.meta["train_lines"] == [2, 4, *range(6, 16)]
    assert "city=new\nyork" in ds.meta["feature_names"]
    train.write_text(text + "abc,rome,no\n")
    with pytest.raises(TableError, match="train.csv, line 16, column 'age': the value 'abc'"):
        load_csv(train, "y", valid=valid, test=test)


def test_numeric_labels_floats_cannot_tell_apart_stay_two_classes(tmp_path):
    big = ["12345678901234567890", "12345678901234567891"]  # one float64: 1.2345678901234567e+19
    rows = [(20 + i, "oslo", big[i % 2]) for i in range(10)]
    train, valid, test = three_files(tmp_path, rows, rows[:4], rows[4:8])
    ds = load_csv(train, "y", valid=valid, test=test)
    assert ds.num_classes == 2 and ds.meta["label_names"] == big
    assert list(ds.y_train) == [i % 2 for i in range(10)]
    small = ["0.1", "0.10000000000000001", "1e-5", "3e+30"]  # 0.1 == 0.10000000000000001 in float
    rows = [(20 + i, "oslo", small[i % 4]) for i in range(8)]
    train, valid, test = three_files(tmp_path, rows, rows, rows)
    ds = load_csv(train, "y", valid=valid, test=test)
    assert ds.meta["label_names"] == ["1e-05", "0.1", "0.10000000000000001", "3e+30"]


@pytest.mark.parametrize("label, char", [("1\x00", "\\x00"), ("yes\x07", "\\x07"),
                                         ('"ye\ts"', "\\t")])
def test_a_control_character_in_a_label_is_an_error_naming_line_and_cell(tmp_path, label,
                                                                         char):
    train = write_csv(tmp_path / "train.csv", [*[(20 + i, "oslo", i % 2) for i in range(20)],
                                               (30, "oslo", label), (31, "rome", 1)])
    shown = repr(label.strip('"'))
    with pytest.raises(TableError) as err:
        load_csv(train, "y")
    assert str(err.value) == (
        f"{train}, line 22: the label (column 'y') {shown} holds the control character "
        f"'{char}'; remove it from the file (it would make a class of its own).")


def test_numbers_beyond_float32_say_overflow_not_nan(tmp_path):
    rows = [(i, "oslo", i % 2) for i in range(40)]
    rows[3] = (1e308, "oslo", 1)
    rows[4] = (-1e308, "rome", 0)
    train = write_csv(tmp_path / "train.csv", rows)
    valid = write_csv(tmp_path / "valid.csv", [(1e308, "oslo", 1), (2, "rome", 0)])
    with pytest.raises(TableError, match=r"Column 'age' spans -1e\+308 to 1e\+308 in the "
                                         r"training rows of .*train.csv, a range beyond "
                                         r"float64; scale the column first"):
        load_csv(train, "y", valid=valid, test=valid)
    train = write_csv(tmp_path / "train.csv", [(i, "oslo", i % 2) for i in range(40)])
    with pytest.raises(ValueError, match=r"x_valid has values that overflow float32 \(largest "
                                         r"magnitude 2.564e\+306, first at row 0, column 0"):
        load_csv(train, "y", valid=valid, test=valid)
