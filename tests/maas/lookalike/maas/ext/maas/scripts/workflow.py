"""A sampled workflow: a seeded controller picks operators per layer; ``__call__`` runs them."""

from __future__ import annotations

import math
import random

from maas.ext.maas.scripts.operator import Generate, ScEnsemble, SelfRefine


class Controller:
    """Samples one of ``choices`` per layer (uniformly, seeded) and reports the log-probability."""

    def __init__(self, choices: list[list[str]], seed: int) -> None:
        self.choices = choices
        self.random = random.Random(seed)

    def sample(self) -> tuple[list[str], float]:
        picked = [self.random.choice(layer) for layer in self.choices]
        return picked, sum(-math.log(len(layer)) for layer in self.choices)


class Workflow:
    LAYERS = [["Generate"], ["Generate", "SelfRefine"], ["ScEnsemble"]]

    def __init__(self, llm, seed: int = 0) -> None:
        self.llm = llm
        self.controller = Controller(self.LAYERS, seed)
        self.operators = {"Generate": Generate(llm), "SelfRefine": SelfRefine(llm), "ScEnsemble": ScEnsemble(llm)}

    async def __call__(self, problem: str):
        names, log_prob = self.controller.sample()
        self.sampled = names
        solutions: list[str] = []
        for name in names:
            operator = self.operators[name]
            if name == "Generate":
                solutions.append((await operator(problem=problem))["response"])
            elif name == "SelfRefine":
                solutions.append((await operator(problem=problem, solution=solutions[-1]))["response"])
            else:
                solutions = [(await operator(problem=problem, solutions=solutions))["response"]]
        return solutions[-1], self.llm.total_cost, log_prob
