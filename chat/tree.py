"""A conversation's messages as a tree: each message has a parent (None for a first
message), an edit or a regenerated reply is a sibling of the message it replaces, and the
thread shown is one path from a root down.

``ConversationTree`` is built from one light query (id, parent id, role of every message
of one conversation) and answers, in memory: the path from the root to a message (the
context a model sees), the newest line below a message (where a branch continues), and
each message's siblings (the "‹ 2 / 3 ›" switch). Children are ordered by id, which grows
with time: the newest is the last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USER = "user"


@dataclass(frozen=True, slots=True)
class Siblings:
    """Where a message stands among its siblings: ``index`` 1-based, ``count`` of them,
    and the ids of the previous and next sibling (None at either end)."""

    index: int
    count: int
    previous_id: int | None
    next_id: int | None

    @classmethod
    def within(cls, group: list[int], message_id: int) -> Siblings:
        """Where ``message_id`` stands in ``group`` (all its siblings, in id order)."""
        i = group.index(message_id)
        return cls(
            index=i + 1,
            count=len(group),
            previous_id=group[i - 1] if i > 0 else None,
            next_id=group[i + 1] if i + 1 < len(group) else None,
        )


@dataclass
class ConversationTree:
    """The shape of one conversation: ``parent[id]``, ``role[id]``, ``children[parent_id]``
    (None holds the roots), every list in id order."""

    parent: dict[int, int | None] = field(default_factory=dict)
    role: dict[int, str] = field(default_factory=dict)
    children: dict[int | None, list[int]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[tuple[int, int | None, str]]) -> ConversationTree:
        """From ``(id, parent_id, role)`` rows in any order. A parent id that is not among
        the rows (a broken link) makes that message a root rather than losing it."""
        tree = cls()
        rows = sorted(rows)
        known = {row[0] for row in rows}
        for message_id, parent_id, role in rows:
            if parent_id is not None and parent_id not in known:
                parent_id = None
            tree.parent[message_id] = parent_id
            tree.role[message_id] = role
            tree.children.setdefault(parent_id, []).append(message_id)
        return tree

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.parent

    def __len__(self) -> int:
        return len(self.parent)

    def path_to(self, message_id: int) -> list[int]:
        """The ids from the root down to ``message_id`` (included). KeyError if absent."""
        path = [message_id]
        seen = {message_id}
        parent = self.parent[message_id]
        while parent is not None and parent not in seen:
            path.append(parent)
            seen.add(parent)
            parent = self.parent[parent]
        path.reverse()
        return path

    def is_compare(self, message_id: int) -> bool:
        """A question answered by several replies side by side that the person has not
        picked from yet: a user message with two or more replies, shown as the end of
        the thread."""
        return self.role.get(message_id) == USER and len(self.children.get(message_id, ())) > 1

    def newest_below(self, message_id: int | None) -> list[int]:
        """The line under ``message_id`` (None: from the roots), following the newest
        child each step, ``message_id`` itself not included."""
        line: list[int] = []
        node = message_id
        while True:
            kids = self.children.get(node)
            if not kids:
                return line
            node = kids[-1]
            line.append(node)

    def leaf_of(self, message_id: int) -> int:
        """The last message of the newest line through ``message_id``."""
        below = self.newest_below(message_id)
        return below[-1] if below else message_id

    def thread(self, leaf: int | None) -> list[int]:
        """The thread shown for ``leaf``: the path to it, then on down by the newest child
        (``leaf`` None or unknown: the newest line from the newest root). A compare leaf
        (see ``is_compare``) ends the thread: its replies are shown side by side."""
        if leaf is None or leaf not in self.parent:
            return self.newest_below(None)
        path = self.path_to(leaf)
        if self.is_compare(leaf):
            return path
        return path + self.newest_below(leaf)

    def siblings(self, message_id: int) -> Siblings:
        """Where ``message_id`` stands among the messages with its parent."""
        return Siblings.within(self.children[self.parent[message_id]], message_id)

    def subtree(self, message_id: int) -> list[int]:
        """``message_id`` and every message below it."""
        out = [message_id]
        i = 0
        while i < len(out):
            out.extend(self.children.get(out[i], ()))
            i += 1
        return out

    def depth_first(self) -> list[int]:
        """Every message, each branch in one run: a message, then everything below its
        first child, then its next child's branch (children in id order)."""
        out: list[int] = []
        stack = list(reversed(self.children.get(None, [])))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(self.children.get(node, [])))
        return out
