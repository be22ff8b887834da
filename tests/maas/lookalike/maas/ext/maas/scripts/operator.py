"""Operators: each asks the LLM through ``ActionNode.fill`` and returns a dict."""

from __future__ import annotations

from maas.actions.action_node import ActionNode


class Operator:
    def __init__(self, llm, name: str) -> None:
        self.llm = llm
        self.name = name

    async def __call__(self, *args, **kwargs):
        raise NotImplementedError

    async def _fill(self, prompt: str, *fields: str) -> dict[str, str]:
        node = await ActionNode.for_fields(*fields).fill(context=prompt, llm=self.llm)
        return dict(node.instruct_content)


class Generate(Operator):
    def __init__(self, llm, name: str = "Generate") -> None:
        super().__init__(llm, name)

    async def __call__(self, problem: str, instruction: str = "Solve the problem.") -> dict[str, str]:
        return await self._fill(f"{instruction}\n{problem}", "response")


class SelfRefine(Operator):
    def __init__(self, llm, name: str = "SelfRefine") -> None:
        super().__init__(llm, name)

    async def __call__(self, problem: str, solution: str) -> dict[str, str]:
        return await self._fill(f"Improve this solution.\nProblem: {problem}\nSolution: {solution}", "response")


class ScEnsemble(Operator):
    def __init__(self, llm, name: str = "ScEnsemble") -> None:
        super().__init__(llm, name)

    async def __call__(self, problem: str, solutions: list[str]) -> dict[str, str]:
        letters = "".join(f"{chr(65 + i)}: {s}\n" for i, s in enumerate(solutions))
        picked = await self._fill(f"Pick the most consistent solution.\n{problem}\n{letters}", "solution_letter")
        index = ord(picked["solution_letter"].strip().upper()[:1] or "A") - 65
        return {"response": solutions[min(max(index, 0), len(solutions) - 1)]}
