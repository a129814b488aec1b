"""The conversation tree's pure logic (chat/tree.py): paths, the branch shown, siblings."""

from __future__ import annotations

from chat.tree import ConversationTree, Siblings

# 1 user -> 2 reply -> 3 user -> 4 reply
#                   \-> 5 user (edit of 3) -> 6 reply -> 8 reply (regenerated; 7 first)
#                                          \-> 7 reply
ROWS = [
    (1, None, "user"),
    (2, 1, "assistant"),
    (3, 2, "user"),
    (4, 3, "assistant"),
    (5, 2, "user"),
    (6, 5, "assistant"),
    (7, 5, "assistant"),
]


def tree() -> ConversationTree:
    return ConversationTree.from_rows(list(reversed(ROWS)))


def test_path_to_a_message_runs_from_the_root() -> None:
    assert tree().path_to(4) == [1, 2, 3, 4]
    assert tree().path_to(6) == [1, 2, 5, 6]


def test_the_thread_follows_the_newest_child_below_the_leaf() -> None:
    assert tree().thread(None) == [1, 2, 5, 7]
    assert tree().thread(3) == [1, 2, 3, 4]
    assert tree().thread(6) == [1, 2, 5, 6]


def test_siblings_say_where_a_message_stands() -> None:
    assert tree().siblings(3) == Siblings(index=1, count=2, previous_id=None, next_id=5)
    assert tree().siblings(7) == Siblings(index=2, count=2, previous_id=6, next_id=None)
    assert tree().siblings(1).count == 1


def test_a_question_with_several_replies_as_the_leaf_ends_the_thread() -> None:
    t = tree()
    assert t.is_compare(5)
    assert t.thread(5) == [1, 2, 5]
    assert not t.is_compare(3)


def test_subtree_holds_everything_below() -> None:
    assert sorted(tree().subtree(2)) == [2, 3, 4, 5, 6, 7]
    assert tree().subtree(4) == [4]


def test_a_dangling_parent_becomes_a_root_instead_of_vanishing() -> None:
    t = ConversationTree.from_rows([(10, 99, "user"), (11, 10, "assistant")])
    assert t.thread(None) == [10, 11]
