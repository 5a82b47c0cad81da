"""A stand-in for ``vllm run-batch``: reads an OpenAI-batch JSONL, writes its output file in vLLM's layout.

``python tests/fake_vllm.py run-batch -i requests.jsonl -o results.jsonl --model NAME`` answers each
request like :func:`http_servers.default_reply`; a prompt holding ``[boom]`` gets an error line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from http_servers import default_reply  # noqa: E402


def answer(line: dict[str, object], model: str) -> dict[str, object]:
    body = line["body"]
    assert isinstance(body, dict) and line["url"] == "/v1/chat/completions" and line["method"] == "POST"
    text = body["messages"][-1]["content"]
    if "[boom]" in text:
        error = {"object": "error", "message": "engine error", "type": "InternalServerError", "code": 500}
        return {"id": "vllm-x", "custom_id": line["custom_id"], "response": {"status_code": 500, "body": error}}
    reply, reason = default_reply(text)
    completion = {
        "id": "chatcmpl-vllm",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": reason}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }
    return {
        "id": "vllm-x",
        "custom_id": line["custom_id"],
        "response": {"status_code": 200, "request_id": "vllm-batch-x", "body": completion},
        "error": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run-batch"])
    parser.add_argument("-i", "--input-file", required=True)
    parser.add_argument("-o", "--output-file", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    lines = [json.loads(x) for x in Path(args.input_file).read_text().splitlines() if x.strip()]
    out = "".join(json.dumps(answer(line, args.model)) + "\n" for line in lines)
    Path(args.output_file).write_text(out)


if __name__ == "__main__":
    main()
