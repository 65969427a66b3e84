"""`stanch codec-server`: Temporal's remote codec protocol, so the Temporal UI and CLI can show encrypted
payloads to people who may see them, without the Temporal server ever holding the key.

Protocol: `POST /encode` and `POST /decode` take and return `{"payloads": [<Payload as protobuf JSON>]}`
(metadata values and data base64). The UI calls it from the browser, so the UI's origin must be allowed
by CORS; point the UI at it with `--ui-codec-endpoint http://host:port` or the UI's codec settings.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from stanch.codec import EncryptionCodec, codec_from_settings
from stanch.settings import Settings


def allowed_origins(settings: Settings) -> list[str]:
    """The configured origins, or the Temporal UI's own at its default addresses."""
    configured = [origin.strip() for origin in settings.codec_cors_origins.split(",") if origin.strip()]
    if configured:
        return configured
    port = settings.temporal_ui_port
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


def create_app(settings: Settings, codec: EncryptionCodec | None = None) -> FastAPI:
    codec = codec or codec_from_settings(settings)
    if codec is None:
        raise ValueError("the codec server needs STANCH_PAYLOAD_KEY")
    app = FastAPI(title="Stanch codec server", version="0.1.0")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed_origins(settings),
        # The UI sends its namespace and, when it has one, the user's token with every request.
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
        allow_methods=["POST", "OPTIONS"],
        allow_credentials=True,
    )

    async def convert(request: Request, encode: bool) -> JSONResponse:
        try:
            payloads = json_format.ParseDict(await request.json(), Payloads())
        except (ValueError, json_format.ParseError) as error:
            return JSONResponse(status_code=400, content={"error": f"not a payloads body: {error}"})
        try:
            converted = await (codec.encode if encode else codec.decode)(payloads.payloads)
        except Exception as error:  # a wrong key or a tampered payload: say so, never echo the payload
            return JSONResponse(status_code=400, content={"error": f"cannot convert: {type(error).__name__}"})
        body: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=converted))
        return JSONResponse(content={"payloads": body.get("payloads", [])})

    @app.post("/encode")
    async def encode(request: Request) -> JSONResponse:
        return await convert(request, encode=True)

    @app.post("/decode")
    async def decode(request: Request) -> JSONResponse:
        return await convert(request, encode=False)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def main(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.codec_server_port, log_level="warning"
    )
