"""A base for the tests' own plugins: teams of plain Python objects that nothing needs to patch."""

from __future__ import annotations

from typing import Any


class PlainTeamPlugin:
    """A plugin for instances of ``team_type``: nothing to instrument, no agents to describe; ``arun`` is the test's."""

    name = "plain"
    team_type: type = object

    def matches(self, team: Any) -> bool:
        return isinstance(team, self.team_type)

    def instrument(self) -> None:
        pass

    def uninstrument(self) -> None:
        pass

    def describe(self, team: Any) -> list[Any]:
        return []
