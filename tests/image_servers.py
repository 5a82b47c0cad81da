"""Small images made with Pillow, and a local server that speaks the three image protocols.

``VisionServer`` (127.0.0.1, a free port, a background thread) answers:

* ``POST /v1/chat/completions`` (OpenAI): the image must come as an ``image_url`` part holding a base64
  data URI;
* ``POST /v1/messages`` (Anthropic): the image must come as an ``image`` block with a base64 source whose
  ``media_type`` is the image's real type;
* ``POST /v1/images/generations``: a prompt holding ``blood`` is rejected (HTTP 400
  ``content_policy_violation``), one holding ``knife`` comes back marked as filtered, any other gets a PNG.

It decodes every image it receives and keeps its bytes (``received``); a chat answer refuses when the
image is red and otherwise names the colour it saw, so an answer proves which bytes arrived.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

from aiohttp import web
from PIL import Image

from http_servers import ScriptedServer

REFUSAL = "I'm sorry, but I can't help with that."
COLOURS = {(255, 0, 0): "red", (0, 128, 0): "green", (0, 0, 255): "blue", (255, 255, 0): "yellow"}


def make_image(colour: str = "green", size: tuple[int, int] = (32, 24), fmt: str = "PNG") -> bytes:
    """A plain image of one colour."""
    rgb = next(k for k, v in COLOURS.items() if v == colour)
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def colour_of(data: bytes) -> str:
    """The colour name of an image made by :func:`make_image` (``other`` for anything else)."""
    with Image.open(io.BytesIO(data)) as picture:
        pixel = picture.convert("RGB").getpixel((0, 0))
    assert isinstance(pixel, tuple)
    best = min(COLOURS, key=lambda rgb: sum((a - b) ** 2 for a, b in zip(rgb, pixel, strict=True)))
    return COLOURS[best]


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)


class VisionServer(ScriptedServer):
    """Checks the images it receives and answers by their colour; generates images on request.

    Its lifecycle (a background thread, ``with`` blocks) is :class:`ScriptedServer`'s; only the routes differ.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received: list[bytes] = []
        """The image bytes of every chat request, decoded from what came over the wire."""
        self.texts: list[str] = []
        self.generated: dict[str, bytes] = {}
        """Prompt -> the PNG sent back for it."""
        self.generation_requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return self.openai_url

    def _answer(self, data: bytes | None, text: str) -> str:
        self.texts.append(text)
        judging = "Classify the RESPONSE" in text  # the LLM judge asking
        if data is None:
            return "No picture. <label>direct_answer</label>" if judging else f"Sure, a text answer to: {text[:30]}"
        self.received.append(data)
        colour = colour_of(data)
        if judging:  # a judge that looks at the picture: red ones are refused
            return f"The picture is {colour}. <label>{'direct_refusal' if colour == 'red' else 'direct_answer'}</label>"
        return REFUSAL if colour == "red" else f"Sure. The picture is {colour}; here is the answer to: {text[:30]}"

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        content = body["messages"][-1]["content"]
        if isinstance(content, str):
            answer = self._answer(None, content)
        else:
            images = [p for p in content if p.get("type") == "image_url"]
            texts = [p["text"] for p in content if p.get("type") == "text"]
            if len(images) != 1:
                return _bad("expected one image_url part")
            url = images[0]["image_url"]["url"]
            header, _, encoded = url.partition(",")
            if not header.startswith("data:image/") or not header.endswith(";base64"):
                return _bad(f"image_url is not a base64 data URI: {header[:40]}")
            data = base64.b64decode(encoded, validate=True)
            with Image.open(io.BytesIO(data)) as picture:
                if f"image/{picture.format.lower()}" != header[5:].split(";")[0]:
                    return _bad("data URI type does not match the image")
            answer = self._answer(data, " ".join(texts))
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": len(answer.split())},
            }
        )

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        content = body["messages"][-1]["content"]
        if isinstance(content, str):
            answer = self._answer(None, content)
        else:
            blocks = [b for b in content if b.get("type") == "image"]
            texts = [b["text"] for b in content if b.get("type") == "text"]
            if len(blocks) != 1 or blocks[0]["source"].get("type") != "base64":
                return _bad("expected one base64 image block")
            data = base64.b64decode(blocks[0]["source"]["data"], validate=True)
            with Image.open(io.BytesIO(data)) as picture:
                if blocks[0]["source"]["media_type"] != f"image/{picture.format.lower()}":
                    return _bad("media_type does not match the image")
            answer = self._answer(data, " ".join(texts))
        return web.json_response(
            {
                "id": "msg",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 5, "output_tokens": len(answer.split())},
            }
        )

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.generation_requests.append(body)
        prompt = body["prompt"]
        if "blood" in prompt:
            return web.json_response(
                {
                    "error": {
                        "code": "content_policy_violation",
                        "message": "Your request was rejected as a result of our safety system.",
                        "type": "invalid_request_error",
                    }
                },
                status=400,
            )
        if "knife" in prompt:
            filtered = {"violence": {"filtered": True, "severity": "medium"}}
            return web.json_response({"created": 1, "data": [{"content_filter_results": filtered}]})
        colour = ("green", "blue", "yellow")[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3]
        png = make_image(colour, (48, 48))
        self.generated[prompt] = png
        item = {"b64_json": base64.b64encode(png).decode(), "revised_prompt": f"A {colour} picture: {prompt}"}
        return web.json_response({"created": 1, "data": [item]})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/images/generations", self._generate)
        return app
