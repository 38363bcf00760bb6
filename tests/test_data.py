"""Loading ECG5000, splitting it and fitting the scaler."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from service.artifact import NORMAL_CLASS
from training.config import TrainingConfig
from training.data import (
    DATA_DIR,
    DataFileError,
    load_file,
    load_pool,
    stratified_split,
    training_rows,
)
from training.pipeline import prepare

GOOD_ROW = "1\t" + "\t".join(["0.5"] * 140)


def write_gz(path, lines):
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("1\t" + "\t".join(["0.5"] * 139), "expected 1 class + 140 values, found 140 fields"),
        ("1\t" + "\t".join(["0.5"] * 141), "found 142 fields"),
        ("1\t" + "\t".join(["0.5"] * 70 + ["abc"] + ["0.5"] * 69), "value 71 is not a number: 'abc'"),
        ("1\t" + "\t".join(["0.5"] * 9 + ["nan"] + ["0.5"] * 130), "value 10 is not finite"),
        ("1\t" + "\t".join(["inf"] + ["0.5"] * 139), "value 1 is not finite"),
        ("7\t" + "\t".join(["0.5"] * 140), "unknown class '7'"),
        ("x\t" + "\t".join(["0.5"] * 140), "class 'x' is not a number"),
    ],
)
def test_a_corrupt_row_is_rejected_naming_file_and_line(tmp_path, bad_row, message):
    """The loader names the file, the line and what is wrong with it."""
    path = write_gz(tmp_path / "bad.tsv.gz", [GOOD_ROW, GOOD_ROW, bad_row])
    with pytest.raises(DataFileError) as info:
        load_file(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_a_truncated_gzip_file_is_reported_by_name(tmp_path):
    path = tmp_path / "cut.tsv.gz"
    data = gzip.compress(("\n".join([GOOD_ROW] * 50) + "\n").encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match=r"cut\.tsv\.gz"):
        load_file(path)


def test_the_pool_holds_train_rows_then_test_rows(pool):
    train = load_file(DATA_DIR / "ECG5000_TRAIN.tsv.gz")
    assert len(pool) == 5000 and len(train) == 500
    np.testing.assert_array_equal(pool.beats[:500], train.beats)
    assert dict(zip(*np.unique(pool.classes, return_counts=True), strict=True)) == {
        1: 2919,
        2: 1767,
        3: 96,
        4: 194,
        5: 24,
    }


def test_the_split_is_stratified_disjoint_and_reproducible(pool):
    a = stratified_split(pool.classes, 0.2, 0.2, seed=3)
    b = stratified_split(pool.classes, 0.2, 0.2, seed=3)
    c = stratified_split(pool.classes, 0.2, 0.2, seed=4)
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.test, c.test)
    everything = np.concatenate([a.train, a.validation, a.test])
    assert sorted(everything.tolist()) == list(range(5000))
    assert len(a.test) == 1000 and len(a.validation) == 1000
    for cls in (1, 2, 3, 4, 5):  # each class keeps its share in the test split
        share_pool = (pool.classes == cls).mean()
        share_test = (pool.classes[a.test] == cls).mean()
        assert abs(share_pool - share_test) < 0.01


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5])
def test_abnormal_fraction_mixes_that_share_into_training(pool, fraction):
    split = stratified_split(pool.classes, 0.2, 0.2, seed=0)
    rows = training_rows(pool.classes, split.train, fraction, seed=0)
    assert set(rows) <= set(split.train)
    assert abs((pool.classes[rows] != NORMAL_CLASS).mean() - fraction) < 0.002


def test_the_scaler_never_sees_validation_or_test_rows(pool):
    """Making a validation and a test beat extreme leaves the fitted scaler unchanged."""
    config = TrainingConfig()
    before = prepare(config, pool)
    rows = before.pool.beats[before.train_rows]
    assert before.scaler.data_min == pytest.approx(rows.min())
    assert before.scaler.data_max == pytest.approx(rows.max())
    beats = pool.beats.copy()
    beats[before.split.validation[0]] = 1000.0
    beats[before.split.test[0]] = -1000.0
    after = prepare(config, type(pool)(beats, pool.classes))
    assert after.scaler == before.scaler


def test_load_pool_reads_files_in_the_given_order(tmp_path):
    a = write_gz(tmp_path / "a.tsv.gz", [GOOD_ROW])
    b = write_gz(tmp_path / "b.tsv.gz", ["2\t" + "\t".join(["1.5"] * 140)])
    assert load_pool([a, b]).classes.tolist() == [1, 2]
    assert load_pool([b, a]).classes.tolist() == [2, 1]
