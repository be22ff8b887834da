"""``ActionNode.fill``: ask the LLM for named fields and read them back from ``<field>...</field>`` tags."""

from __future__ import annotations

import re
from typing import Any


class ActionNode:
    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        self.instruct_content: dict[str, str] = {}

    @classmethod
    def for_fields(cls, *fields: str) -> ActionNode:
        return cls(list(fields))

    async def fill(self, context: str, llm: Any, mode: str = "xml_fill") -> ActionNode:
        tags = ", ".join(f"<{f}>...</{f}>" for f in self.fields)
        answer = await llm.aask(f"{context}\n\nAnswer with {tags}.")
        for field in self.fields:
            found = re.search(rf"<{field}>(.*?)</{field}>", answer, re.DOTALL)
            self.instruct_content[field] = found.group(1).strip() if found else answer.strip()
        return self
