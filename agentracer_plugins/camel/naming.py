"""Names of CAMEL agents in a trajectory, and stable ids for Workforce nodes.

A Workforce node's default id is ``str(id(node))`` (a worker's: its agent's random uuid ``agent_id``):
different in every rebuild, yet it appears in the coordinator's prompts. Replay needs the rebuilt team to
ask what the recorded one asked, so nodes whose id is such a default get a positional id instead
(``worker-0``, ``workforce-1.worker-0``, ...). Ids you chose (e.g. ``ChatAgent(agent_id="adder")``) stay.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._context import role_name
from .codec import text


def worker_name(node: Any) -> str:
    """A worker node's agent name: its node id and its description."""
    description = " ".join(str(getattr(node, "description", "") or "").split())
    node_id = text(node.node_id)
    return f"{node_id} ({description})" if description else node_id


def _is_default_id(node: Any) -> bool:
    node_id = str(getattr(node, "node_id", ""))
    if node_id == str(id(node)):
        return True
    try:
        return uuid.UUID(node_id).version == 4 and len(node_id) == 36
    except ValueError:
        return False


def stabilize_node_ids(workforce: Any, prefix: str = "") -> None:
    """Give every node that kept its default (memory-address) id a positional one; idempotent."""
    from camel.societies.workforce import Workforce

    if _is_default_id(workforce):
        workforce.node_id = prefix.rstrip(".") or "workforce"
    for index, child in enumerate(getattr(workforce, "_children", [])):
        if isinstance(child, Workforce):
            stabilize_node_ids(child, f"{prefix}workforce-{index}.")
        elif _is_default_id(child):
            child.node_id = f"{prefix}worker-{index}"


Member = tuple[str, Any, str | None]  # (name, ChatAgent or None, description)


def _workforce_members(workforce: Any, prefix: str) -> list[Member]:
    from camel.societies.workforce import Workforce

    members: list[Member] = []
    for agent, fallback in ((getattr(workforce, "coordinator_agent", None), "coordinator"),
                            (getattr(workforce, "task_agent", None), "task planner")):
        if agent is not None:
            members.append((prefix + role_name(agent, fallback), agent, None))
    for child in getattr(workforce, "_children", []):
        if isinstance(child, Workforce):
            members.extend(_workforce_members(child, f"{child.node_id}/"))
        else:
            members.append((worker_name(child), getattr(child, "worker", None), " ".join(str(child.description).split())))
    return members


def team_members(team: Any) -> list[Member]:
    """Every agent of a ChatAgent, RolePlaying or Workforce team with the unique name it is recorded under."""
    from camel.societies import RolePlaying
    from camel.societies.workforce import Workforce

    if isinstance(team, RolePlaying):
        agents: list[tuple[Any, str]] = [(team.user_agent, "user agent"), (team.assistant_agent, "assistant agent")]
        critic = getattr(team, "critic", None)
        if getattr(team, "with_critic_in_the_loop", False) and hasattr(critic, "role_name"):
            agents.append((critic, "critic"))
        members: list[Member] = [(role_name(a, fallback), a, None) for a, fallback in agents]
    elif isinstance(team, Workforce):
        stabilize_node_ids(team)
        members = _workforce_members(team, "")
    else:
        members = [(role_name(team), team, None)]
    seen: dict[str, int] = {}
    unique: list[Member] = []
    for name, agent, description in members:
        seen[name] = seen.get(name, 0) + 1
        unique.append((name if seen[name] == 1 else f"{name} #{seen[name]}", agent, description))
    return unique
