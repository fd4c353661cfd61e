"""The request and response examples of the seed documents, read verbatim from shared/seeds."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.support import shared_file

_BLOCK = re.compile(r"```javascript\n(.*?)```", re.DOTALL)
_ADDRESS = re.compile(r"\[PlatformAddress\](/api/connector/v1/resourceAccessTokens/\w+)")


@dataclass(frozen=True)
class MewsExample:
    path: str
    raw_request: str
    request: dict[str, Any]
    response: dict[str, Any]


def mews_examples() -> dict[str, MewsExample]:
    """Seed 001's examples by operation name (getAll, add, update, delete)."""
    document = shared_file("seeds/001_48a9abfa8d7ed923.txt").read_text()
    examples: dict[str, MewsExample] = {}
    sections = _ADDRESS.split(document)
    # split gives [preamble, path1, text1, path2, text2, ...]
    for path, section in zip(sections[1::2], sections[2::2], strict=True):
        blocks = _BLOCK.findall(section)
        request_text, response_text = blocks[0], blocks[1]
        examples[path.rsplit("/", 1)[1]] = MewsExample(
            path=path,
            raw_request=request_text,
            request=json.loads(request_text),
            response=json.loads(response_text),
        )
    return examples


_NEXUDUS_REQUEST = re.compile(r"^(GET|POST|PUT|DELETE) https://spaces\.nexudus\.com(\S+)$", re.M)
_NEXUDUS_AUTH = re.compile(r"^(Authentication): (Basic \S+)$", re.M)


@dataclass(frozen=True)
class NexudusExamples:
    requests: list[tuple[str, str]]  # (method, path and query), in document order
    auth_header: tuple[str, str]


def nexudus_examples() -> NexudusExamples:
    """Seed 003's example request lines (``Example request`` blocks) and its auth header."""
    document = shared_file("seeds/003_f6d6ad2eb8810a54.txt").read_text()
    requests = []
    for section in document.split("Example request")[1:]:
        found = _NEXUDUS_REQUEST.search(section)
        assert found is not None
        requests.append((found.group(1), found.group(2)))
    header = _NEXUDUS_AUTH.search(document)
    assert header is not None
    return NexudusExamples(requests=requests, auth_header=(header.group(1), header.group(2)))
