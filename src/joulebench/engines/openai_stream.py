"""One streamed OpenAI request: the JSON body we send, and the server-sent events we read back.

A chunk's arrival instant is the arrival of every token it carries: one per token ID when the server
streams IDs (vLLM's ``return_token_ids``), else one per chunk with text. The token count is the server's
``usage.completion_tokens`` (asked for with ``stream_options.include_usage``), never counted from text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from joulebench.workloads.spec import Request, Response, SamplingSpec


def request_body(
    api: str,
    model: str,
    prompt: str,
    sampling: SamplingSpec,
    return_token_ids: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The POST body of a streamed ``completions`` or ``chat`` request."""
    body: dict[str, Any] = {"model": model}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body |= {
        "max_tokens": sampling.max_output_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.ignore_eos:
        body["ignore_eos"] = True  # vLLM, SGLang and TGI extension: generate exactly max_tokens
    if return_token_ids:
        body["return_token_ids"] = True
    body |= extra or {}
    return body


@dataclass
class StreamState:
    """What has arrived so far for one request."""

    submit_s: float
    token_times_s: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    ids_seen: int | None = None  # token IDs streamed, when the server sends them
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    end_s: float | None = None
    error: str | None = None
    done: bool = False

    def feed(self, line: str, t_s: float) -> None:
        """Take one line of the event stream, read at ``t_s``. Lines after ``[DONE]`` or an error are
        ignored."""
        if self.done or self.error is not None or not line.startswith("data:"):
            return  # also blank separators, ": keep-alive" comments, "event:" names
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            self.fail(f"malformed stream chunk: {payload[:100]}")
            return
        if not isinstance(chunk, dict):
            return
        if "error" in chunk:
            err = chunk["error"]
            self.fail(f"server error: {err.get('message', err) if isinstance(err, dict) else err}")
            return
        for choice in chunk.get("choices") or ():
            self._take(choice, t_s)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)

    def _take(self, choice: dict[str, Any], t_s: float) -> None:
        text = choice.get("text")
        if text is None:
            text = (choice.get("delta") or {}).get("content")
        ids = choice.get("token_ids")
        if isinstance(ids, list):
            self.ids_seen = (self.ids_seen or 0) + len(ids)
            n = len(ids)
        else:
            n = 1 if text else 0
        self.token_times_s.extend([t_s] * n)
        if text:
            self.text.append(text)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def close(self, t_s: float) -> None:
        """The stream ended at ``t_s``; a stream cut before ``[DONE]`` is an error."""
        self.end_s = t_s
        if not self.done and self.error is None:
            self.fail("stream ended before [DONE]")

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    @property
    def ids_disagree(self) -> bool:
        return (
            self.error is None
            and self.ids_seen is not None
            and self.completion_tokens is not None
            and self.ids_seen != self.completion_tokens
        )

    def response(self, request: Request) -> Response:
        from joulebench.workloads.spec import Response

        tokens = self.completion_tokens if self.completion_tokens is not None else self.ids_seen
        error = self.error
        if error is None and tokens is None:
            error = (
                "the server reported no usage.completion_tokens (stream_options.include_usage unsupported?)"
            )
        times = tuple(self.token_times_s)
        return Response(
            index=request.index,
            # A failed request keeps the tokens we know it generated (streamed IDs), else 0.
            output_tokens=(tokens or 0) if error is None else (self.ids_seen or 0),
            prompt_tokens=self.prompt_tokens if self.prompt_tokens is not None else request.prompt_tokens,
            finish_reason="error" if error else self.finish_reason,
            first_token_s=times[0] if times else None,
            finish_s=times[-1] if times else self.end_s,
            submit_s=self.submit_s,
            token_times_s=times,
            error=error,
            text="".join(self.text),
        )
