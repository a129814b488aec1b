"""Business logic: keyword-only functions named <noun>_<verb>, in modules by concern.

Where things live:

- ``conversations.py``: create, rename, delete, settings, seen marks.
- ``menu.py``: the model menu and the model a new chat starts on.
- ``branches.py``: the branch shown, deleting a branch, forking one.
- ``replies.py``: preparing a reply (checks, the person's message, the history).
- ``runs.py``: **the reply run**, the one place a reply is generated; it yields typed
  run events.
- ``hub.py``: the process's runs and what they share (start/stop, Stop, shutdown).
- Consumers of run events: ``persistence.py`` (the database), ``chat_stream.py`` (the
  chat page's SSE, following a run live or re-attaching), ``broker.py`` (other workers,
  through Redis), ``titles.py`` (a title written by a model after the first reply).
"""

from ..sse import HEARTBEAT, sse_event
from .branches import (
    attachments_copy,
    branch_delete,
    branch_show,
    conversation_fork,
    messages_chain,
)
from .chat_stream import reply_follow, run_follow
from .conversations import (
    TITLE_MAX_CHARS,
    conversation_create,
    conversation_delete,
    conversation_mark_seen,
    conversation_rename,
    conversation_update_settings,
    title_from_text,
)
from .hub import STOP_GRACE_SECONDS, ShuttingDown, get_hub, reply_stop
from .menu import ProviderChoice, model_default_for, provider_menu
from .persistence import (
    SAVE_RETRY_DELAYS,
    connection_release,
    db_step,
    outcome_of,
    save_checkpoints,
    save_outcome,
    save_outcome_patiently,
    streaming_replies_close,
)
from .replies import (
    CONTINUE_PROMPT,
    PreparedReply,
    ReplyAction,
    estimate_tokens,
    history_fit,
    reply_expire_stale,
    reply_prepare,
)
from .runs import ReplyRun, RunFailed, RunFinished, RunStarted, RunStopped

__all__ = [
    "CONTINUE_PROMPT",
    "HEARTBEAT",
    "SAVE_RETRY_DELAYS",
    "STOP_GRACE_SECONDS",
    "TITLE_MAX_CHARS",
    "PreparedReply",
    "ProviderChoice",
    "ReplyAction",
    "ReplyRun",
    "RunFailed",
    "RunFinished",
    "RunStarted",
    "RunStopped",
    "ShuttingDown",
    "attachments_copy",
    "branch_delete",
    "branch_show",
    "connection_release",
    "conversation_create",
    "conversation_delete",
    "conversation_fork",
    "conversation_mark_seen",
    "conversation_rename",
    "conversation_update_settings",
    "db_step",
    "estimate_tokens",
    "get_hub",
    "history_fit",
    "messages_chain",
    "model_default_for",
    "outcome_of",
    "provider_menu",
    "reply_expire_stale",
    "reply_follow",
    "reply_prepare",
    "reply_stop",
    "run_follow",
    "save_checkpoints",
    "save_outcome",
    "save_outcome_patiently",
    "sse_event",
    "streaming_replies_close",
    "title_from_text",
]
