"""The OpenAPI 3.1 document, generated from the same pydantic models the handlers use,
and a self-contained docs page (no CDN: servers often have no internet access)."""

from __future__ import annotations

import html
from functools import cache

import orjson
from pydantic.json_schema import models_json_schema

from . import __doc__ as service_doc
from .inference_protocol import EXTENSIONS, HEADER_LENGTH, InferRequestHeader
from .schemas import ErrorResponse, ModelInfo, PredictRequest, PredictResponse, Status
from .settings import Settings

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict:
    return {"$ref": _REF.format(model=name)}


def _json(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict:
    text = {
        400: "Malformed JSON.",
        404: "Unknown model name.",
        413: "Too many beats or too large a body.",
        415: "Content-Type is not application/json.",
        422: "The body does not match the schema; details name each location.",
        503: "The model is still loading.",
    }
    return {str(c): _json("ErrorResponse", text[c]) for c in codes}


@cache
def _components() -> dict:
    _, schema = models_json_schema(
        [
            (m, "validation" if m is PredictRequest else "serialization")
            for m in (PredictRequest, PredictResponse, ErrorResponse, ModelInfo, Status)
        ]
        + [(InferRequestHeader, "validation")],
        ref_template=_REF,
    )
    return schema["$defs"]


def _v2_paths() -> dict:
    """The Open Inference Protocol routes, summarised: the protocol is their full spec."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    plain = {"200": {"description": "JSON.", "content": {"application/json": {}}}}
    infer = {
        "post": {
            "summary": (
                "Open Inference Protocol (KServe v2) inference; with the binary tensor extension "
                f"({HEADER_LENGTH} header) beats and outputs may be raw little-endian tensors."
            ),
            "parameters": [name],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("InferRequestHeader")},
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"},
                        "description": f"The JSON header ({HEADER_LENGTH} bytes), then the tensor bytes.",
                    },
                },
            },
            "responses": {
                "200": {
                    "description": "The requested outputs (all five by default).",
                    "content": {"application/json": {}, "application/octet-stream": {}},
                },
                **_errors(400, 404, 413, 415, 422, 503),
            },
        }
    }
    with_version = {"post": {**infer["post"], "parameters": [name, version]}}
    return {
        "/v2": {
            "get": {"summary": f"Server metadata; extensions: {', '.join(EXTENSIONS)}.", "responses": plain}
        },
        "/v2/health/live": {"get": {"summary": "Protocol liveness.", "responses": plain}},
        "/v2/health/ready": {"get": {"summary": "Protocol readiness (400 until ready).", "responses": plain}},
        "/v2/models/{name}": {
            "get": {
                "summary": "Model metadata: inputs and outputs.",
                "parameters": [name],
                "responses": plain,
            }
        },
        "/v2/models/{name}/ready": {
            "get": {"summary": "Model readiness (400 until ready).", "parameters": [name], "responses": plain}
        },
        "/v2/models/{name}/infer": infer,
        "/v2/models/{name}/versions/{version}/infer": with_version,
    }


def _with_api_keys(document: dict, settings: Settings) -> dict:
    """With keys on: the Bearer scheme, required by every operation not open, and their 401."""
    from .access import OpenRoutes

    open_routes = OpenRoutes(settings.auth_open_routes)
    document["components"]["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key (README, Security)."}
    }
    document["security"] = [{"apiKey": []}]
    refused = _json("ErrorResponse", "No API key (missing_api_key), or not a valid one (invalid_api_key).")
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in open_routes:
                operation["security"] = []
            else:
                operation["responses"]["401"] = refused
    return document


def openapi_document(settings: Settings) -> dict:
    document = _document(settings)
    return _with_api_keys(document, settings) if settings.api_keys_file is not None else document


def _document(settings: Settings) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ecg-anomaly",
            "version": "1",
            "description": (service_doc or "").strip()
            + f" Up to {settings.max_beats} beats and {settings.max_body_bytes} bytes a request.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Score heartbeats: MSE, anomaly flag and per-point errors.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("PredictRequest")}},
                    },
                    "responses": {
                        "200": _json("PredictResponse", "One score per posted beat, in order."),
                        **_errors(400, 413, 415, 422, 503),
                    },
                }
            },
            "/livez": {
                "get": {"summary": "The process is up.", "responses": {"200": _json("Status", "Alive.")}}
            },
            "/readyz": {
                "get": {
                    "summary": "The model is loaded and warmed up.",
                    "responses": {"200": _json("Status", "Ready."), **_errors(503)},
                }
            },
            "/v1/models/{name}": {
                "get": {
                    "summary": "The served model: version, threshold, scaler, test metrics.",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _json("ModelInfo", "Model description."), **_errors(404)},
                }
            },
            "/v1/models/{name}/test-split": {
                "get": {
                    "summary": "The model's own test split (ECG5000 rows at its metadata's test indices),"
                    " scored: per beat its pool row, raw values, MSE and out_of_range, grouped by true"
                    " class 1-5. Needs the data files in ECG_DATA_DIR (checked by sha256).",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "The scored test split.", "content": {"application/json": {}}},
                        "404": _json(
                            "ErrorResponse",
                            "Unknown model name; or test_split_unavailable: the data files are absent"
                            " or not the ones the model was trained on.",
                        ),
                        **_errors(503),
                    },
                }
            },
            "/v1/models/{name}/metadata": {
                "get": {
                    "summary": "The served version's metadata.json: the model card.",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "The metadata.", "content": {"application/json": {}}},
                        **_errors(404),
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "The explorer: test beats, their reconstructions, the threshold, drawing.",
                    "responses": {"200": {"description": "An HTML page.", "content": {"text/html": {}}}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics, aggregated over all workers.",
                    "responses": {
                        "200": {"description": "Prometheus text format.", "content": {"text/plain": {}}}
                    },
                }
            },
            **_v2_paths(),
        },
        "components": {"schemas": _components()},
    }


def docs_page(document: dict) -> str:
    rows = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op['summary'])}</td></tr>"
            )
    schemas = orjson.dumps(document["components"]["schemas"], option=orjson.OPT_INDENT_2).decode()
    example = (
        "curl -s localhost:8000/predict -H 'Content-Type: application/json' \\\n"
        "  -d '{\"beats\": [[-0.11, -2.83, ... 140 values ...]]}'"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ecg-anomaly API</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
td,th{{padding:.3rem .8rem;text-align:left}}pre{{background:#f4f4f4;padding:1rem;overflow:auto}}</style>
</head><body>
<h1>ecg-anomaly API</h1>
<p>{html.escape(document["info"]["description"])}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<table><tr><th>method</th><th>path</th><th>what it does</th></tr>{"".join(rows)}</table>
<h2>Example</h2><pre>{html.escape(example)}</pre>
<h2>Schemas</h2><pre>{html.escape(schemas)}</pre>
</body></html>"""
