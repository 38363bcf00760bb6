"""The explorer in a real browser (Debian's chromium driven by PyPI's playwright, never
``playwright install``) against a real gunicorn serving the bundled model: the page loads
clean and only from its own origin, a chosen beat shows what /predict says, the threshold
controls recompute the metrics as scikit-learn does, and a drawn beat is scored."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from .conftest import REPO, missing

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("ECG_TEST_ARTIFACTS", REPO / "test-artifacts")) / "explorer"
METRICS = ("precision", "recall", "f1", "fpr", "fnr", "accuracy")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        missing("chromium", "apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright", "pip install playwright==1.65.2 (the dev extra); never `playwright install`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A loaded explorer page and what it did: console messages, errors, requests."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 1800})
        self.console: list[str] = []
        self.requests: list[str] = []
        self.predict_bodies: list[dict] = []
        self.authorization: dict[str, str | None] = {}  # the last Authorization sent, by URL path
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", self._request)
        self.page.goto(url + "/")
        self.page.wait_for_selector("body[data-started=true]", timeout=60_000)

    def _request(self, request) -> None:
        self.requests.append(request.url)
        self.authorization[urlsplit(request.url).path] = request.headers.get("authorization")
        if request.url.endswith("/predict"):
            self.predict_bodies.append(json.loads(request.post_data))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def split(server):
    body = requests.get(f"{server.url}/v1/models/ecg-autoencoder/test-split", timeout=30).json()
    beats = [(g["class"], b) for g in body["classes"] for b in g["beats"]]
    return body, beats


@pytest.fixture()
def page(browser, server):
    p = Page(browser, server.url)
    yield p
    p.page.close()


def errors_of(p: Page) -> list[str]:
    return [m for m in p.console if m.startswith(("error", "pageerror"))]


def test_the_page_loads_clean_and_only_from_its_own_origin(page, server):
    page.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    page.shot("loaded")
    assert errors_of(page) == []
    own = urlsplit(server.url).netloc
    assert page.requests and {urlsplit(u).netloc for u in page.requests} == {own}, page.requests
    assert page.page.locator("#gallery button.beat").count() == 1000
    assert "1000 test beats" in page.page.locator("#status").inner_text()


def pick(split, kind: str) -> tuple[int, dict]:
    """A test beat nearest the model's threshold on the side ``kind`` names: a normal beat
    not flagged, an abnormal one flagged, a normal one flagged, an abnormal one missed."""
    body, beats = split
    t = body["threshold"]
    wanted = {
        "normal": lambda c, b: c == 1 and b["mse"] <= t,
        "abnormal": lambda c, b: c != 1 and b["mse"] > t,
        "false-positive": lambda c, b: c == 1 and b["mse"] > t,
        "false-negative": lambda c, b: c != 1 and b["mse"] <= t,
    }[kind]
    return min(((c, b) for c, b in beats if wanted(c, b)), key=lambda cb: abs(cb[1]["mse"] - t))


@pytest.mark.parametrize("kind", ["normal", "abnormal", "false-positive", "false-negative"])
def test_a_chosen_beat_shows_the_verdict_predict_gives(page, server, split, kind):
    page.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    cls, beat = pick(split, kind)
    page.page.locator(f'#gallery button[data-row="{beat["row"]}"]').click()
    page.page.wait_for_selector("#verdict-value", timeout=30_000)
    page.shot(f"beat-{kind}")
    direct = requests.post(
        f"{server.url}/predict", json={"beats": [beat["values"]], "return_reconstruction": True}, timeout=30
    ).json()["predictions"][0]
    assert direct["is_anomaly"] == (kind in ("abnormal", "false-positive"))
    verdict = page.page.locator("#verdict-value").inner_text()
    assert verdict == ("abnormal (flagged)" if direct["is_anomaly"] else "normal (not flagged)")
    assert float(page.page.locator("#verdict").get_attribute("data-mse")) == direct["mse"]
    assert page.page.locator("#class-value").inner_text().startswith(f"class {cls}")
    assert page.page.locator("#oor-value").inner_text().startswith("yes" if direct["out_of_range"] else "no")
    # the red/green shading follows the verdict, not the true class
    shading = page.page.locator("#beat-plot g.err").get_attribute("class")
    assert shading == ("err flagged" if direct["is_anomaly"] else "err passed")
    assert page.predict_bodies[-1] == {"beats": [beat["values"]], "return_reconstruction": True}
    assert errors_of(page) == []


def sklearn_metrics(y, scores, threshold):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

    pred = (scores > threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "fpr": fp / (fp + tn),
        "fnr": fn / (fn + tp),
        "accuracy": accuracy_score(y, pred),
        "confusion": {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)},
    }


def test_the_pages_metric_code_equals_scikit_learns(page, split):
    from sklearn.metrics import roc_auc_score, roc_curve

    _, beats = split
    scores = np.array([b["mse"] for _, b in beats])
    y = np.array([int(c != 1) for c, _ in beats])
    thresholds = [float(t) for t in np.quantile(scores, [0.0, 0.1, 0.4, 0.5, 0.6, 0.9, 1.0])] + [1e-9, 1e3]
    result = page.page.evaluate(
        """async ([scores, labels, thresholds]) => {
            const m = await import('/explorer/metrics.js');
            const roc = m.rocCurve(scores, labels);
            return {at: thresholds.map((t) => m.metricsAt(scores, labels, t)), auc: m.auc(roc), roc};
        }""",
        [scores.tolist(), y.tolist(), thresholds],
    )
    for threshold, got in zip(thresholds, result["at"], strict=True):
        want = sklearn_metrics(y, scores, threshold)
        assert got["confusion"] == want["confusion"], threshold
        for name in METRICS:
            assert got[name] == pytest.approx(want[name], abs=1e-12), (threshold, name)
    assert result["auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose([p["fpr"] for p in result["roc"]], fpr, atol=1e-12)
    np.testing.assert_allclose([p["tpr"] for p in result["roc"]], tpr, atol=1e-12)


def shown_metrics(p: Page) -> dict[str, float]:
    return {n: float(p.page.locator(f"#metric-{n}").get_attribute("data-value")) for n in METRICS}


def test_moving_the_threshold_recomputes_the_metrics(page, server, split, bundled_metadata):
    page.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    body, beats = split
    scores = np.array([b["mse"] for _, b in beats])
    y = np.array([int(c != 1) for c, _ in beats])
    at_model = sklearn_metrics(y, scores, body["threshold"])
    model = {k: v for k, v in at_model.items() if k in METRICS}
    assert shown_metrics(page) == pytest.approx(model, abs=1e-12)
    # the endpoint's scores reproduce the training run's own test metrics
    recorded = bundled_metadata.metrics
    assert at_model["confusion"] == recorded.confusion_matrix.model_dump()
    assert model == pytest.approx({k: getattr(recorded, k) for k in METRICS}, abs=1e-12)
    wrong = at_model["confusion"]["fp"] + at_model["confusion"]["fn"]
    page.page.locator("#verdict-filter").select_option("wrong")
    assert page.page.locator("#gallery button.beat").count() == wrong
    page.page.locator("#verdict-filter").select_option("all")

    slider = page.page.locator("#threshold-slider")
    slider.focus()
    for _ in range(40):  # keyboard only: the slider is operable without a pointer
        page.page.keyboard.press("ArrowRight")
    threshold = float(page.page.locator("#threshold-number").input_value())
    assert threshold > body["threshold"]
    want = sklearn_metrics(y, scores, threshold)
    assert shown_metrics(page) == pytest.approx({k: want[k] for k in METRICS}, abs=1e-12)
    assert shown_metrics(page) != pytest.approx(model, abs=1e-6)
    for k in ("tp", "fp", "tn", "fn"):
        assert int(page.page.locator(f"#cm-{k}").inner_text()) == want["confusion"][k]
    request_body = json.loads(page.page.locator("#request-body").get_attribute("data-body"))
    assert request_body["threshold"] == threshold and len(request_body["beats"][0]) == 140
    applied = requests.post(f"{server.url}/predict", json=request_body, timeout=30).json()
    assert applied["threshold"] == threshold
    flagged = page.page.locator("#gallery button.beat.flagged").count()
    assert flagged == want["confusion"]["tp"] + want["confusion"]["fp"]  # the borders follow
    page.shot("threshold-moved")

    page.page.locator("#threshold-number").fill("0.01")
    page.page.locator("#threshold-number").press("Enter")
    want = sklearn_metrics(y, scores, 0.01)
    assert shown_metrics(page) == pytest.approx({k: want[k] for k in METRICS}, abs=1e-12)
    page.page.locator("#threshold-number").fill("-1")
    page.page.locator("#threshold-number").press("Enter")
    assert "greater than 0" in page.page.locator("#threshold-error").inner_text()
    assert errors_of(page) == []


def test_a_drawn_beat_is_scored(page, server, split):
    page.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    body, _ = split
    pad = page.page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None
    mouse = page.page.mouse
    xs = np.linspace(box["x"] + 2, box["x"] + box["width"] - 2, 12)
    ys = box["y"] + box["height"] * (0.5 + 0.3 * np.sin(np.linspace(0, 2 * np.pi, 12)))
    mouse.move(xs[0], ys[0])
    mouse.down()
    for x, y in zip(xs[1:], ys[1:], strict=True):
        mouse.move(x, y, steps=2)
    mouse.up()
    page.page.wait_for_selector("#draw-result[data-mse]", timeout=30_000)
    page.shot("drawn")
    sent = page.predict_bodies[-1]["beats"][0]
    low, high = body["scaler"]["data_min"], body["scaler"]["data_max"]
    assert len(sent) == 140 and all(low <= v <= high for v in sent)
    assert np.ptp(sent) > 0.3 * (high - low)  # the stroke's shape, not a flat line
    direct = requests.post(f"{server.url}/predict", json={"beats": [sent]}, timeout=30).json()["predictions"][
        0
    ]
    assert float(page.page.locator("#draw-result").get_attribute("data-mse")) == direct["mse"]
    page.page.locator("#clear-pad").click()
    assert page.page.locator("#draw-result").inner_text() == ""
    assert errors_of(page) == []


def test_without_the_data_files_the_page_says_so_and_drawing_still_works(browser, tmp_path):
    """The serving image ships no data/ (README, The explorer): the split is a 404, the
    page says why, and the model card and the drawing pad still work."""
    from service.artifact import list_versions

    from .conftest import BUNDLED_MODELS, BUNDLED_NAME, start_gunicorn

    srv = start_gunicorn(tmp_path, BUNDLED_MODELS, BUNDLED_NAME, workers=1, ECG_DATA_DIR=str(tmp_path))
    try:
        srv.wait_ready(workers=1)
        p = Page(browser, srv.url)
        assert "test split is not available" in p.page.locator("#status").inner_text()
        assert "test_split_unavailable" in p.page.locator("#status").inner_text()
        assert p.page.locator("#gallery-section").is_hidden()
        newest = max(list_versions(BUNDLED_MODELS, BUNDLED_NAME))  # what the server serves
        assert f"ecg-autoencoder version {newest}" in p.page.locator("#card").inner_text()
        # the one console error is the browser's own line about the 404
        assert [m for m in errors_of(p) if "404" not in m] == []
        box = p.page.locator("#pad").bounding_box()
        assert box is not None
        p.page.mouse.move(box["x"] + 5, box["y"] + 20)
        p.page.mouse.down()
        p.page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] - 20, steps=8)
        p.page.mouse.up()
        p.page.wait_for_selector("#draw-result[data-mse]", timeout=30_000)
        p.shot("no-data")
        sent = p.predict_bodies[-1]["beats"][0]
        assert len(sent) == 140 and sent[0] > sent[-1]  # drawn from top left to bottom right
        p.page.close()
    finally:
        srv.stop()


def test_the_gallery_is_one_tab_stop_and_keyboard_operable(page, server, split):
    page.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    page.page.locator("#verdict-filter").focus()
    page.page.keyboard.press("Tab")  # past the count into the gallery: its first beat
    _, beats = split
    first = page.page.evaluate("document.activeElement.dataset.row")
    assert first == str(beats[0][1]["row"])
    page.page.keyboard.press("ArrowRight")
    second = page.page.evaluate("document.activeElement.dataset.row")
    assert second == str(beats[1][1]["row"])
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("#verdict-value", timeout=30_000)
    assert page.predict_bodies[-1]["beats"] == [beats[1][1]["values"]]
    page.page.keyboard.press("Tab")  # one Tab leaves the 1000 beats
    assert page.page.evaluate("document.activeElement.id") == "pad"  # the drawing area
    # the class filter narrows the gallery to one class
    page.page.locator("#class-filter").select_option("3")
    assert page.page.locator("#gallery button.beat").count() == sum(c == 3 for c, _ in beats)
    assert errors_of(page) == []


def test_a_beat_drawn_with_the_keyboard_is_scored(page, split):
    page.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    body, _ = split
    low, high = body["scaler"]["data_min"], body["scaler"]["data_max"]
    page.page.locator("#pad").focus()
    for _ in range(2):
        page.page.keyboard.press("Shift+ArrowRight")  # cursor to sample 20
    for _ in range(3):
        page.page.keyboard.press("Shift+ArrowUp")  # +10% of the range each
    page.page.keyboard.press("ArrowDown")  # -2%
    want = 0.28 * (high - low)  # from a flat line at 0
    deadline = time.monotonic() + 30
    while not (page.predict_bodies and page.predict_bodies[-1]["beats"][0][20] == pytest.approx(want)):
        assert time.monotonic() < deadline, page.predict_bodies[-1:]
        page.page.wait_for_timeout(100)  # scoring is debounced while keys are pressed
    sent = page.predict_bodies[-1]["beats"][0]
    assert len(sent) == 140 and sent[:20] == [0.0] * 20 and sent[21:] == [0.0] * 119
    page.page.wait_for_selector("#draw-result[data-mse]", timeout=30_000)
    assert errors_of(page) == []


def test_with_api_keys_on_the_page_asks_for_a_key_and_sends_it(browser, tmp_path):
    """README, Security: with keys on and the page's files opened, the explorer asks for
    a key, says when one is refused, and then sends it with every data request."""
    import secrets

    from .conftest import BUNDLED_MODELS, BUNDLED_NAME, start_gunicorn

    key = secrets.token_urlsafe(32)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "api-keys").write_text(key + "\n")
    srv = start_gunicorn(
        tmp_path, BUNDLED_MODELS, BUNDLED_NAME, workers=1,
        ECG_API_KEYS_FILE=str(tmp_path / "keys" / "api-keys"),
        ECG_AUTH_OPEN_ROUTES="/livez,/readyz,/metrics,/,/explorer/*",
    )  # fmt: skip
    try:
        srv.wait_ready(workers=1)
        p = Page(browser, srv.url)
        assert p.page.locator("#key-form").is_visible()
        assert "needs an API key" in p.page.locator("#key-message").inner_text()
        assert "Enter an API key" in p.page.locator("#status").inner_text()
        for attempt in (secrets.token_urlsafe(32), key):
            p.page.locator("#key-input").fill(attempt)
            with p.page.expect_navigation():
                p.page.locator("#key-form button[type=submit]").click()
            p.page.wait_for_selector("body[data-started=true]", timeout=60_000)
            if attempt != key:
                assert "refused that API key" in p.page.locator("#key-message").inner_text()
        p.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        assert p.page.locator("#key-form").is_hidden()
        assert p.page.locator("#gallery button.beat").count() == 1000
        p.page.locator("#gallery button.beat").first.click()
        p.page.wait_for_selector("#verdict-value", timeout=30_000)
        bearer = f"Bearer {key}"
        for path in (
            "/v1/models/ecg-autoencoder/metadata",
            "/v1/models/ecg-autoencoder/test-split",
            "/predict",
        ):
            assert p.authorization[path] == bearer, path
        assert p.authorization["/explorer/main.js"] is None  # the page's own files need none
        p.shot("api-key")
        # the only console errors are the browser's lines about the two refused requests
        assert [m for m in errors_of(p) if "401" not in m] == []
        p.page.close()
    finally:
        srv.stop()
