"""The service's OpenAPI 3.1 document, written by hand: the endpoints and the report schema."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..record import KEYS
from ..verify import SCHEMA_VERSION, STATUSES, VERDICTS

__all__ = ["document"]


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _layer(description: str, statuses: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object", "description": description, "required": ["status"],
        "properties": {"status": {"type": "string", "enum": statuses},
                       "message": {"type": "string"}, **properties},
        "additionalProperties": True,
    }


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_BOOL_OR_NULL = {"type": ["boolean", "null"]}

_REPORT = {
    "type": "object",
    "description": "Everything verify found about one file: the same object as a line of "
                   "`labelkit verify --json`.",
    "required": ["schema_version", "path", "format", "verdict", "record", "checks", "carriers",
                 "explicit", "signature", "watermark", "token_watermark", "c2pa"],
    "properties": {
        "schema_version": {"type": "integer", "const": SCHEMA_VERSION},
        "path": {"type": "string",
                 "description": "the upload's file name (last component only), or 'upload'"},
        "format": {"type": ["string", "null"], "examples": ["jpeg", "png", "mp4", "markdown"]},
        "verdict": {
            "type": "string", "enum": list(VERDICTS),
            "description": "compliant; noncompliant (a check failed); not_found (no label); "
                           "traces_only (no metadata label, but labelkit's watermark or visible "
                           "label is there: the metadata was stripped); inconclusive",
        },
        "record": {
            "type": ["object", "null"],
            "description": "the seven GB 45438 Annex E fields of the label found, or null",
            "properties": {k: {"type": "string"} for k in KEYS},
            "additionalProperties": True,
        },
        "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
        "carriers": {
            "type": "array", "description": "every place a label was found in the container",
            "items": {"type": "object", "properties": {
                "kind": {"type": "string"}, "location": {"type": "string"},
                "text": {"type": "string"}}},
        },
        "explicit": _layer(
            "the explicit label (visible text, audible cue, text notice)",
            ["present", "absent", "n/a", "error"],
            {"duration_s": {"type": "number", "description": "video: how long the label shows "
                                                             "from the start"},
             "spans": {"type": "array", "items": {"type": "object"}}}),
        "signature": _layer(
            "the ReservedCode1 signature binding the label to the content",
            ["valid", "absent", "malformed", "unknown_scheme", "unverified", "unknown_key",
             "fields_edited", "content_mismatch", "content_changed", "label_copied", "n/a",
             "error"],
            {"key_id": {"type": "string"}, "algorithm": {"type": "string"},
             "fingerprint_distance": {"type": "integer"}}),
        "watermark": _layer(
            "the invisible watermark, looked for with the provider's key held by the server",
            ["present", "absent", "n/a", "error"],
            {"present": {"type": "boolean"}, "p_value": _NUMBER_OR_NULL,
             "payload": {"type": ["string", "null"], "pattern": "^[0-9a-f]{16}$",
                         "description": "64-bit payload, HMAC(secret, ProduceID), hex"},
             "matches_record": {**_BOOL_OR_NULL,
                                "description": "does the payload belong to this label's "
                                               "ProduceID (null: nothing to compare)"},
             "score": {"type": "number"}, "hypotheses": {"type": "integer"},
             "frames": {"type": "integer", "description": "video: frames decoded"}}),
        "token_watermark": _layer(
            "the generation-time token watermark of text (not looked for by this service: it "
            "needs the generating model's tokenizer)", ["present", "absent", "n/a", "error"],
            {"p_value": _NUMBER_OR_NULL, "score": {"type": "number"}}),
        "c2pa": _layer(
            "C2PA Content Credentials, validated offline (remote manifests are never fetched)",
            ["trusted", "valid", "invalid", "absent", "n/a", "error"],
            {"failures": {"type": "array", "items": {"type": "string"}},
             "signer": {"type": ["string", "null"]},
             "aigc_matches_label": _BOOL_OR_NULL, "soft_binding": {"type": ["object", "null"]}}),
    },
}

_RECORD = {
    "type": "object",
    "description": "What the ledger publishes about a labeled item. Never the recipient of "
                   "content handed out without the explicit label (personal data).",
    "required": ["ProduceID", "producer", "modality", "format", "labeled_at",
                 "explicit_applied", "watermark_embedded"],
    "properties": {
        "ProduceID": {"type": "string"},
        "producer": {"type": "string", "description": "the content producer's code"},
        "modality": {"type": "string", "enum": ["image", "video", "audio", "text", "document"]},
        "format": {"type": "string"},
        "labeled_at": {"type": "string", "format": "date-time",
                       "description": "ISO 8601, UTC, milliseconds"},
        "explicit_applied": {"type": "boolean",
                             "description": "whether the content carries the explicit label "
                                            "(applied when labeled, or already present)"},
        "watermark_embedded": {"type": "boolean"},
        "essence_digest": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                           "description": "hex digest of the media bytes ReservedCode1 signs "
                                          "(absent when the service withholds it)"},
    },
}


def document(max_upload_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service (the upload limit written into it)."""
    limit = f"{max_upload_bytes} bytes"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "labelkit verification service",
            "version": __version__,
            "description": "Verify GB 45438-2025 labels of AI-generated content (the implicit "
                           "metadata label, its ReservedCode1 signature, the explicit label, "
                           "the invisible watermark with the provider's key, C2PA), and look "
                           "up what the provider's ledger publishes about a ProduceID. Errors "
                           "are JSON objects with an `error` message.",
        },
        "paths": {
            "/v1/verify": {"post": {
                "operationId": "verify",
                "summary": "Verify one file",
                "description": "Send the file as a multipart/form-data part with a filename "
                               "(field `file`), or as the raw request body (any other content "
                               f"type; name it with `?name=`). At most {limit}. The file is "
                               "recognised by its content (text by its name's extension: "
                               ".txt, .md, .html).",
                "parameters": [{"name": "name", "in": "query", "required": False,
                                "schema": {"type": "string"},
                                "description": "raw bodies: the file's name for the report"}],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["file"],
                        "properties": {"file": {"type": "string",
                                                "contentMediaType": "application/octet-stream"}},
                    }},
                    "application/octet-stream": {"schema": {
                        "type": "string", "contentMediaType": "application/octet-stream"}},
                }},
                "responses": {
                    "200": {"description": "the report",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Report"}}}},
                    "400": _error("no file, an empty one, or a malformed multipart body"),
                    "413": _error(f"the upload is over {limit} (refused unread when its "
                                  "Content-Length says so)"),
                    "415": _error("not a format labelkit handles (`path` names the upload)"),
                    "422": _error("a supported format that is damaged, truncated or over a "
                                  "decoding limit (`path` names the upload)"),
                    "503": _error("every verification slot is busy: retry after Retry-After "
                                  "seconds"),
                    "504": _error("the request took longer than the service's timeout"),
                },
            }},
            "/v1/records/{ProduceID}": {"get": {
                "operationId": "getRecord",
                "summary": "What the ledger publishes about a labeled item",
                "parameters": [{"name": "ProduceID", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the published record", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Record"}}}},
                    "404": _error("no record of this ProduceID"),
                    "503": _error("the ledger cannot be read now"),
                },
            }},
            "/healthz": {"get": {
                "operationId": "health",
                "summary": "Liveness, and how many verification slots are busy",
                "responses": {"200": {"description": "the service is up", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "status": {"const": "ok"}, "version": {"type": "string"},
                        "busy": {"type": "integer"}, "slots": {"type": "integer"}}}}}}},
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {}}}},
            }},
            "/": {"get": {
                "operationId": "root",
                "summary": "The web page: drop a file in, read its report in Chinese and English",
                "description": "HTML; its script, style and icon are /static/app.js, "
                               "/static/app.css and /static/favicon.svg. Served with a strict "
                               "Content-Security-Policy (default-src 'self').",
                "responses": {"200": {"description": "the page",
                                      "content": {"text/html": {}}}},
            }},
        },
        "components": {"schemas": {
            "Report": _REPORT,
            "Check": {
                "type": "object", "required": ["id", "status", "message"],
                "properties": {
                    "id": {"type": "string", "examples": ["parse", "label_present", "signature",
                                                          "watermark", "explicit", "c2pa"]},
                    "status": {"type": "string", "enum": list(STATUSES)},
                    "message": {"type": "string"},
                    "evidence": {"type": ["object", "null"]},
                },
            },
            "Record": _RECORD,
            "Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "string"},
                               "path": {"type": "string",
                                        "description": "the upload's name (415, 422)"}},
            },
        }},
    }
