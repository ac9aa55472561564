"""A chat-completions fake that streams a script of chunks, for tests of how a stream is read."""

from __future__ import annotations

from dataclasses import dataclass

from tests.providers.fakes import FakeProvider


@dataclass
class ScriptedFake(FakeProvider):
    """Streams the given chunks (a JSON object, "[DONE]", or raw bytes such as a comment)."""

    chunks: tuple = ()

    def stream_openai(self) -> list[bytes]:
        return [c if isinstance(c, bytes) else self.sse(c) for c in self.chunks]
