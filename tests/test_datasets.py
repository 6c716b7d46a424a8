"""ValuationDataset builders: label noise as in the official code, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from dvrl_env import add_label_noise, from_arrays, load_dataset
from tests.conftest import separable_arrays


def test_label_noise_flips_exactly_round_rate_n_to_other_classes():
    labels = np.arange(1000) % 10
    noisy, mask = add_label_noise(labels, 10, 0.2, seed=3)
    assert mask.sum() == 200
    assert np.all(noisy[mask] != labels[mask])
    assert np.array_equal(noisy[~mask], labels[~mask])
    # every other class is reachable: the offsets are uniform over 1..C-1
    offsets = (noisy[mask] - labels[mask]) % 10
    assert set(np.unique(offsets)) == set(range(1, 10))
    again, mask_again = add_label_noise(labels, 10, 0.2, seed=3)
    assert np.array_equal(again, noisy) and np.array_equal(mask_again, mask)
    other, _ = add_label_noise(labels, 10, 0.2, seed=4)
    assert not np.array_equal(other, noisy)


def test_noise_rate_rounds_and_touches_train_only():
    x, y = separable_arrays(n=300)
    ds = from_arrays(x[:101], y[:101], x[101:200], y[101:200], x[200:], y[200:],
                     noise_rate=0.1, seed=1)
    assert ds.noisy_mask.sum() == round(0.1 * 101)
    assert np.array_equal(ds.y_train != ds.y_train_clean, ds.noisy_mask)
    assert np.array_equal(ds.y_valid, y[101:200]) and np.array_equal(ds.y_test, y[200:])


def test_without_test_split_validation_is_reused_and_said_so():
    x, y = separable_arrays()
    ds = from_arrays(x[:100], y[:100], x[100:], y[100:])
    assert ds.meta["test_is_valid"] and np.array_equal(ds.y_test, ds.y_valid)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.__setitem__("x_train", _with(a["x_train"], (3, 1), np.nan)), "NaN or inf"),
        (lambda a: a.__setitem__("x_valid", _with(a["x_valid"], (0, 0), np.inf)), "NaN or inf"),
        (lambda a: a.update(y_train=a["y_train"] + 5, num_classes=2), r"Labels must lie in 0\.\.1"),
        (lambda a: a.__setitem__("y_train", a["y_train"] - 1), "Labels must lie in"),
        (lambda a: a.__setitem__("y_train", a["y_train"][:-1]), "must match"),
        (lambda a: a.__setitem__("x_valid", a["x_valid"][:0]), "validation set is empty"),
        (lambda a: a.__setitem__("x_test", a["x_test"][:, :2]), "features but x_train has"),
        (lambda a: a.__setitem__("x_train", a["x_train"][:, 0]), r"expected \(n_samples"),
        (lambda a: a.__setitem__("y_train", a["y_train"] + 0.5), "integer class labels"),
    ],
)
def test_bad_arrays_raise_clear_errors(change, message):
    x, y = separable_arrays()
    arrays = {"x_train": x[:100], "y_train": y[:100], "x_valid": x[100:200],
              "y_valid": y[100:200], "x_test": x[200:], "y_test": y[200:]}
    change(arrays)
    if len(arrays["x_valid"]) == 0:
        arrays["y_valid"] = arrays["y_valid"][:0]
    with pytest.raises(ValueError, match=message):
        from_arrays(**arrays)


def _with(a, where, value):
    a = a.copy()
    a[where] = value
    return a


def test_single_class_is_rejected():
    x, _ = separable_arrays()
    zeros = np.zeros(len(x), dtype=int)
    with pytest.raises(ValueError, match="at least two classes"):
        from_arrays(x[:100], zeros[:100], x[100:], zeros[100:])


def test_validation_missing_a_class_warns():
    x, y = separable_arrays()
    y = y + (x[:, 1] > 1)  # three classes; class 2 is rare
    keep = y[100:] < 2
    with pytest.warns(UserWarning, match=r"no example of class\(es\) \[2\]"):
        from_arrays(x[:100], y[:100], x[100:][keep], y[100:][keep], num_classes=3)


def test_a_single_class_validation_set_is_refused():
    x, y = separable_arrays()
    keep = y[100:] == 0
    with pytest.raises(ValueError, match=r"validation set holds a single class \(0\).*stratified"):
        from_arrays(x[:100], y[:100], x[100:][keep], y[100:][keep])


def test_unknown_dataset_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'.*digits.*adult"):
        load_dataset("mnist")


def test_image_options_on_tabular_dataset_are_refused():
    with pytest.raises(ValueError, match="image datasets only"):
        load_dataset("digits", encoder="resnet18")


def test_validation_missing_a_class_names_it_when_the_labels_have_names():
    x, y = separable_arrays()
    y = y + (x[:, 1] > 1)
    keep = y[100:] < 2
    with pytest.warns(UserWarning, match=r"class\(es\) \[2\] \('high'\); its reward"):
        from_arrays(x[:100], y[:100], x[100:][keep], y[100:][keep], num_classes=3,
                    meta={"label_names": ["low", "mid", "high"]})


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_features_beyond_float32_are_called_an_overflow_not_nan(split):
    """1e308 is finite in float64 but not in float32, where features are kept."""
    x, y = separable_arrays()
    x = x.astype(np.float64)
    rows = {"train": slice(0, 100), "valid": slice(100, 200), "test": slice(200, None)}
    part = x[rows[split]]
    part[4, 1], part[7, 0] = 1e308, -1.25e308
    with pytest.raises(ValueError) as err:
        from_arrays(x[:100], y[:100], x[100:200], y[100:200], x[200:], y[200:])
    message = str(err.value)
    assert message.startswith(f"x_{split} has values that overflow float32 (largest magnitude "
                              "1.25e+308, first at row 4, column 1; float32 holds up to "
                              "3.403e+38)")
    assert "scale them" in message and "NaN" not in message
    x[rows[split]][4, 1] = np.nan  # a real NaN is still called one
    with pytest.raises(ValueError, match=rf"x_{split} has values that overflow"):
        from_arrays(x[:100], y[:100], x[100:200], y[100:200], x[200:], y[200:])
    x[rows[split]][7, 0] = 0.0
    with pytest.raises(ValueError, match=rf"x_{split} contains NaN or inf \(first at row 4"):
        from_arrays(x[:100], y[:100], x[100:200], y[100:200], x[200:], y[200:])


def test_a_python_int_beyond_float_is_an_overflow_error():
    x, y = separable_arrays()
    rows = x[:100].tolist()
    rows[3][0] = 10**400
    with pytest.raises(ValueError, match="x_train holds a number too large for float32"):
        from_arrays(rows, y[:100], x[100:200], y[100:200])


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "3"])
def test_a_bad_data_seed_names_the_option_and_the_range(seed):
    with pytest.raises(ValueError, match=r"data_seed \(seed= of load_dataset\) must be a whole "
                                         r"number from 0 to 2\*\*64 - 1 .*got "):
        load_dataset("digits", n_train=100, n_valid=50, n_test=50, seed=seed)
    x, y = separable_arrays()
    with pytest.raises(ValueError, match=r"^seed must be a whole number from 0 to 2\*\*64 - 1"):
        from_arrays(x[:100], y[:100], x[100:200], y[100:200], seed=seed)
    with pytest.raises(ValueError, match=r"^seed must be a whole number"):
        add_label_noise(y, 2, 0.1, seed=seed)


def test_a_bad_data_seed_of_the_env_names_data_seed():
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"data_seed .* from 0 to 2\*\*64 - 1.*got -1"):
        gym.make("DataValuation-Digits-v0", data_seed=-1, n_train=100, n_valid=50)
    env = gym.make("DataValuation-Digits-v0", data_seed=2**64 - 1, n_train=100, n_valid=50)
    assert env.unwrapped.dataset.meta["data_seed"] == 2**64 - 1
    env.close()
