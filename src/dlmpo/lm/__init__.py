"""Chat-model clients behind one async protocol."""

from dlmpo.lm.managed import Accounting, ChatModel, RetryPolicy
from dlmpo.lm.spec import SPEC_HELP, open_target
from dlmpo.lm.types import ChatRequest, ChatResponse, ToolCall, Usage

__all__ = ["Accounting", "ChatModel", "ChatRequest", "ChatResponse", "RetryPolicy", "SPEC_HELP",
           "ToolCall", "Usage", "open_target"]
