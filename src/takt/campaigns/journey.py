"""Walking a campaign's steps: which step a path names and which path comes after it (pure).

A path names a step within one version of a campaign (:func:`takt.campaigns.model.step_paths`): ``"0"``,
``"1"``, ``"2.then.0"``, ``"2.else.1"``. After the last step of a branch arm comes the step after the branch.
"""

from __future__ import annotations

from takt.campaigns.model import Branch, Step


def step_at(steps: tuple[Step, ...], path: str) -> Step | None:
    parts = path.split(".")
    current: tuple[Step, ...] = steps
    step: Step | None = None
    i = 0
    while i < len(parts):
        idx = int(parts[i])
        if idx >= len(current):
            return None
        step = current[idx]
        if i + 1 < len(parts):
            if not isinstance(step, Branch):
                return None
            current = step.then if parts[i + 1] == "then" else step.otherwise
            i += 2
        else:
            i += 1
    return step


def after(steps: tuple[Step, ...], path: str) -> str | None:
    """The path of the step that follows the step at ``path`` (``None``: the journey is over)."""
    parts = path.split(".")
    while parts:
        prefix = parts[:-1]
        nxt = ".".join([*prefix, str(int(parts[-1]) + 1)])
        if step_at(steps, nxt) is not None:
            return nxt
        if not prefix:
            return None
        parts = prefix[:-1]  # drop the arm name: continue after the branch step itself
    return None


def first_of(steps: tuple[Step, ...], branch_path: str, arm: str) -> str | None:
    """The first step of a branch arm (``then``/``else``), or the step after the branch when the arm is
    empty."""
    step = step_at(steps, branch_path)
    assert isinstance(step, Branch)
    body = step.then if arm == "then" else step.otherwise
    return f"{branch_path}.{arm}.0" if body else after(steps, branch_path)
