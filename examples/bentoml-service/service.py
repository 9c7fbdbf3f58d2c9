"""A real BentoML service: text statistics over HTTP.

POST /analyze {"text": "..."} answers with word and sentence counts, the most frequent words
and an estimated reading time. Only BentoML itself is needed (installed from the package index
when the image is built), no model.
"""

from __future__ import annotations

import re
from collections import Counter

import bentoml

WORD = re.compile(r"[A-Za-z0-9']+")
SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
WORDS_PER_MINUTE = 230


@bentoml.service
class TextStats:
    @bentoml.api
    def analyze(self, text: str, top: int = 3) -> dict:
        words = [w.lower() for w in WORD.findall(text)]
        sentences = len(SENTENCE_END.findall(text.strip())) or (1 if words else 0)
        return {
            "words": len(words),
            "sentences": sentences,
            "top_words": [w for w, _ in Counter(words).most_common(top)],
            "reading_seconds": round(len(words) * 60 / WORDS_PER_MINUTE, 1),
        }
