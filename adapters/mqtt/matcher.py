"""Demultiplexing: a trie over topic levels from filters to their subscribers.

Rules of this module:
- matching walks the topic's levels once; its cost grows with the topic's depth
  and the number of wildcard branches on the way, not with the number of filters
  (RISK_0005: no scan of every filter);
- ``match`` takes no lock: writers replace a node's subscriber tuple or add a
  child in one step, which a concurrent reader sees either before or after;
  ``add`` and ``remove`` must be serialised by the caller;
- a subscriber is delivered at most once per matching filter it is registered
  under; the caller registers each reader under exactly one filter.
"""

from __future__ import annotations

from typing import Generic, TypeVar

S = TypeVar("S")


class _Node(Generic[S]):
    __slots__ = ("children", "here", "multi", "single")

    def __init__(self) -> None:
        self.children: dict[str, _Node[S]] = {}
        self.single: _Node[S] | None = None  # the '+' child
        self.here: tuple[S, ...] = ()  # filters ending at this node
        self.multi: tuple[S, ...] = ()  # filters ending in '#' below this node

    def is_empty(self) -> bool:
        return not (self.children or self.single or self.here or self.multi)


class TopicMatcher(Generic[S]):
    """Maps MQTT filters to subscribers and finds every subscriber of a topic."""

    def __init__(self) -> None:
        self._root: _Node[S] = _Node()
        self._count = 0

    def __len__(self) -> int:
        """How many (filter, subscriber) registrations there are."""
        return self._count

    def add(self, topic_filter: str, subscriber: S) -> None:
        levels = topic_filter.split("/")
        node = self._root
        for level in levels[:-1]:
            node = self._child(node, level)
        last = levels[-1]
        if last == "#":
            node.multi = (*node.multi, subscriber)
        else:
            leaf = self._child(node, last)
            leaf.here = (*leaf.here, subscriber)
        self._count += 1

    def remove(self, topic_filter: str, subscriber: S) -> bool:
        """Remove one registration; return whether it was there."""
        levels = topic_filter.split("/")
        path: list[tuple[_Node[S], str]] = []
        node = self._root
        walk = levels if levels[-1] != "#" else levels[:-1]
        for level in walk:
            child = node.single if level == "+" else node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        attr = "multi" if levels[-1] == "#" else "here"
        current: tuple[S, ...] = getattr(node, attr)
        if subscriber not in current:
            return False
        remaining = list(current)
        remaining.remove(subscriber)
        setattr(node, attr, tuple(remaining))
        self._count -= 1
        for parent, level in reversed(path):  # prune branches left empty
            child = parent.single if level == "+" else parent.children[level]
            if child is None or not child.is_empty():
                break
            if level == "+":
                parent.single = None
            else:
                del parent.children[level]
        return True

    def match(self, topic: str) -> list[S]:
        """Every subscriber whose filter matches ``topic``.

        Iterative (an explicit stack), so any topic MQTT allows matches: 65,535
        bytes, any number of levels.
        """
        levels = topic.split("/")
        depth = len(levels)
        found: list[S] = []
        root = self._root
        if topic.startswith("$"):
            # MQTT-4.7.2-1: wildcards at the first level do not match '$' topics.
            first = root.children.get(levels[0])
            if first is None:
                return found
            stack = [(first, 1)]
        else:
            stack = [(root, 0)]
        pop = stack.pop
        push = stack.append
        while stack:
            node, index = pop()
            if node.multi:
                found.extend(node.multi)
            if index == depth:
                if node.here:
                    found.extend(node.here)
                continue
            if node.single is not None:
                push((node.single, index + 1))
            child = node.children.get(levels[index])
            if child is not None:
                push((child, index + 1))
        return found

    @staticmethod
    def _child(node: _Node[S], level: str) -> _Node[S]:
        if level == "+":
            if node.single is None:
                node.single = _Node()
            return node.single
        child = node.children.get(level)
        if child is None:
            child = node.children[level] = _Node()
        return child
