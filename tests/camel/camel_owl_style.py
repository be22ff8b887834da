"""A role-playing society built the way OWL's ``OwlRolePlaying`` is (our own code, not OWL's).

The user agent plans and instructs, the assistant agent acts with tools; ``step`` is overridden without
calling ``RolePlaying.step`` and edits the messages it forwards: the instruction reaches the assistant with
the overall task appended, and the answer reaches the user with a request for the next instruction. Only
``step`` is overridden, so the plugin's "auto" mode calls it (not the parent's ``astep``).
"""

from __future__ import annotations

from typing import Any

from camel.agents import ChatAgent
from camel.messages import BaseMessage
from camel.responses import ChatAgentResponse
from camel.societies import RolePlaying

PLANNER_PROMPT = (
    "You are the planner. Our overall task is: {task}. Give me one instruction at a time; tell me to use my "
    "tools when facts are needed. When the task is complete, reply with <TASK_DONE>."
)
OPERATOR_PROMPT = "You are the operator. Our overall task is: {task}. Follow each instruction, using tools."


class OwlStyleSociety(RolePlaying):
    """User agent ("Planner") instructs; assistant agent ("Operator") uses tools; ``step`` rewritten."""

    def __init__(self, task: str, planner_model: Any, operator_model: Any, tools: list[Any]) -> None:
        planner = ChatAgent(BaseMessage.make_user_message("Planner", PLANNER_PROMPT.format(task=task)),
                            model=planner_model)
        operator = ChatAgent(BaseMessage.make_assistant_message("Operator", OPERATOR_PROMPT.format(task=task)),
                             model=operator_model, tools=tools)
        super().__init__("Operator", "Planner", task_prompt=task, with_task_specify=False,
                         assistant_agent=operator, user_agent=planner)
        self.overall_task = task

    def init_chat(self, init_prompt: str | None = None) -> BaseMessage:
        self.user_agent.reset()
        self.assistant_agent.reset()
        return BaseMessage.make_user_message(
            "Planner", init_prompt or "Give me instructions to solve the overall task step by step.")

    def step(self, assistant_msg: BaseMessage) -> tuple[ChatAgentResponse, ChatAgentResponse]:
        planner_response = self.user_agent.step(assistant_msg)
        if planner_response.terminated or not planner_response.msgs:
            return (ChatAgentResponse(msgs=[], terminated=False, info={}),
                    ChatAgentResponse(msgs=[], terminated=planner_response.terminated, info=planner_response.info))
        instruction = planner_response.msgs[0]
        forwarded = f"{instruction.content}\n\n(Overall task, for reference: {self.overall_task})"
        operator_response = self.assistant_agent.step(forwarded)
        if operator_response.terminated or not operator_response.msgs:
            return (ChatAgentResponse(msgs=[], terminated=operator_response.terminated, info=operator_response.info),
                    ChatAgentResponse(msgs=[instruction], terminated=False, info=planner_response.info))
        answer = operator_response.msgs[0]
        edited = answer.create_new_instance(
            f"{answer.content}\n\nGive me the next instruction, or say <TASK_DONE> if the task is complete.")
        return (ChatAgentResponse(msgs=[edited], terminated=False, info=operator_response.info),
                ChatAgentResponse(msgs=[instruction], terminated=False, info=planner_response.info))
