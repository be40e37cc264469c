"""Variable: a text value in a computation graph that can receive textual gradients.

Like micrograd's Value: each node keeps its parents and a closure that pushes feedback
back to them; ``backward()`` is a topological sort and a loop.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional


class Variable:
    """A text value with a role description, predecessors and accumulated feedback (gradients)."""

    def __init__(
        self,
        value: str,
        role_description: str,
        requires_grad: bool = True,
        predecessors: Iterable["Variable"] = (),
    ) -> None:
        if not role_description or not role_description.strip():
            raise ValueError("a Variable needs a role_description: the LLM reads it to know what the text is")
        self.value = str(value)
        self.role_description = role_description
        self.requires_grad = requires_grad
        self.predecessors: list[Variable] = list(predecessors)
        self.gradients: list[Variable] = []
        # Filled by the function that produced this variable: pushes feedback to predecessors.
        self._backward: Optional[Callable[[object], None]] = None
        # Free-form data attached by the producing function (e.g. the simulator measurement).
        self.data: dict = {}

    def __repr__(self) -> str:
        short = self.value if len(self.value) <= 60 else self.value[:57] + "..."
        return f"Variable({short!r}, role={self.role_description!r}, grads={len(self.gradients)})"

    def set_value(self, value: str) -> None:
        self.value = str(value)

    def zero_grad(self) -> None:
        self.gradients = []

    def gradient_text(self) -> str:
        """All feedback received by this variable, joined in arrival order."""
        return "\n\n".join(g.value for g in self.gradients)

    def topological_order(self) -> list["Variable"]:
        """Nodes of the graph ending in self, parents before children."""
        order: list[Variable] = []
        seen: set[int] = set()

        def visit(node: Variable) -> None:
            if id(node) in seen:
                return
            seen.add(id(node))
            for parent in node.predecessors:
                visit(parent)
            order.append(node)

        visit(self)
        return order

    def backward(self, engine=None) -> None:
        """Propagate feedback from this node to every ancestor that requires it, children first."""
        for node in reversed(self.topological_order()):
            if node._backward is not None:
                node._backward(engine)
