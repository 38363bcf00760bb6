"""The explorer in-process: the page and its files (headers, nothing from another host),
and the test-split endpoint against the training job's own split and the predictor."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from service.explorer import CONTENT_SECURITY_POLICY, STATIC_DIR
from training.data import DATA_DIR, DEFAULT_FILES


def test_the_page_is_served_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = response.get_data(as_text=True)
    assert '<meta name="ecg-model" content="tiny">' in page
    assert 'href="/docs"' in page
    # no inline script or style: every <script> has a src and is empty, no style attributes
    assert re.findall(r"<script[^>]*>([^<]*)</script>", page) == [""]
    assert "<style" not in page and " style=" not in page


def referenced_files(client) -> set[str]:
    """Every file the page loads: its links and scripts, and the modules they import."""
    page = client.get("/").get_data(as_text=True)
    todo = set(re.findall(r'(?:src|href)="(/explorer/[^"]+)"', page))
    seen: set[str] = set()
    while todo:
        url = todo.pop()
        seen.add(url)
        if url.endswith(".js"):
            text = client.get(url).get_data(as_text=True)
            for module in re.findall(r'from "\./([^"]+)"', text):
                if f"/explorer/{module}" not in seen:
                    todo.add(f"/explorer/{module}")
    return seen


def test_every_file_the_page_loads_is_served_with_its_type_and_headers(client):
    files = referenced_files(client)
    assert {
        "/explorer/main.js",
        "/explorer/metrics.js",
        "/explorer/draw.js",
        "/explorer/explorer.css",
    } <= files
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for url in files:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype == types[url[url.rindex(".") :]], url
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_no_file_names_another_host():
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)


@pytest.mark.parametrize("path", ["/explorer/../app.py", "/explorer/nope.js", "/explorer/"])
def test_files_outside_the_folder_or_absent_are_json_404s(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def split_beats(body):
    rows, classes, mse, values = [], [], [], []
    for group in body["classes"]:
        for beat in group["beats"]:
            rows.append(beat["row"])
            classes.append(group["class"])
            mse.append(beat["mse"])
            values.append(beat["values"])
    return np.array(rows), np.array(classes), np.array(mse), np.array(values, dtype=np.float32)


def test_the_test_split_is_the_artifacts_own_and_scored_by_its_model(client, pool, tiny_run, tiny_predictor):
    response = client.get("/v1/models/tiny/test-split")
    assert response.status_code == 200
    body = response.get_json()
    meta = tiny_run.metadata
    assert [g["class"] for g in body["classes"]] == [1, 2, 3, 4, 5]
    assert [g["abnormal"] for g in body["classes"]] == [False, True, True, True, True]
    rows, classes, mse, values = split_beats(body)
    assert body["n"] == len(rows) == len(meta.split.test_indices)
    assert sorted(rows.tolist()) == sorted(meta.split.test_indices)
    np.testing.assert_array_equal(classes, pool.classes[rows])
    np.testing.assert_array_equal(values, pool.beats[rows])  # exact: float32 round-trips
    np.testing.assert_allclose(mse, tiny_predictor.predict(pool.beats[rows]).mse, rtol=1e-6)
    assert body["threshold"] == meta.threshold.value and body["model_version"] == 1
    # the training run's own test metrics come back from these scores
    abnormal, flagged = classes != 1, mse > meta.threshold.value
    cm = meta.metrics.confusion_matrix
    assert (int(np.sum(abnormal & flagged)), int(np.sum(~abnormal & flagged))) == (cm.tp, cm.fp)
    assert (int(np.sum(~abnormal & ~flagged)), int(np.sum(abnormal & ~flagged))) == (cm.tn, cm.fn)


def test_the_test_split_is_computed_once_per_app(make_app):
    app = make_app()
    client = app.test_client()
    cache = app.extensions["ecg-explorer"]
    assert cache._body is None
    first = client.get("/v1/models/tiny/test-split").data
    body = cache._body
    assert body == first
    assert client.get("/v1/models/tiny/test-split").data == first and cache._body is body


def test_an_unknown_model_is_a_404(client):
    response = client.get("/v1/models/other/test-split")
    assert response.status_code == 404
    assert response.get_json()["error"]["details"] == [{"loc": "path.name", "msg": "expected 'tiny'"}]


def test_without_the_data_files_the_split_is_a_precise_404(make_app, tmp_path):
    response = make_app(data_dir=tmp_path).test_client().get("/v1/models/tiny/test-split")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "test_split_unavailable"
    assert DEFAULT_FILES[0] in error["message"] and error["details"][0]["loc"] == "ECG_DATA_DIR"
    assert str(tmp_path) not in response.get_data(as_text=True)  # no server path in an error


def test_other_data_files_are_refused_by_their_hash(make_app, tmp_path):
    for name in DEFAULT_FILES:
        shutil.copy(DATA_DIR / name, tmp_path / name)
    (tmp_path / DEFAULT_FILES[1]).write_bytes((DATA_DIR / DEFAULT_FILES[0]).read_bytes())
    response = make_app(data_dir=tmp_path).test_client().get("/v1/models/tiny/test-split")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "test_split_unavailable" and "not the file" in error["message"]
    assert "sha256" in error["details"][0]["msg"]


def test_the_metadata_route_returns_the_artifacts_metadata(client, tiny_run):
    body = client.get("/v1/models/tiny/metadata").get_json()
    assert body["split"]["test_indices"] == tiny_run.metadata.split.test_indices
    assert body["threshold"]["value"] == tiny_run.metadata.threshold.value
    assert client.get("/v1/models/x/metadata").status_code == 404


def test_test_indices_outside_the_pool_are_refused(tiny_run):
    from service.test_split import TestSplitUnavailable, load_test_split

    meta = tiny_run.metadata
    broken = meta.model_copy(update={"split": meta.split.model_copy(update={"test_indices": [0, 5000]})})
    with pytest.raises(TestSplitUnavailable, match="do not fit a pool of 5000 rows"):
        load_test_split(DATA_DIR, broken)
    rows = load_test_split(DATA_DIR, meta).rows
    assert rows.tolist() == meta.split.test_indices
