"""Per-task and per-tag concurrency limits: the rules the store's claim enforces (no I/O)."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.tasks.registry import Registry


@dataclass(frozen=True)
class ConcurrencyLimits:
    """How many jobs of a task, or of all tasks with a tag, may run at once (all workers)."""

    task_limits: Mapping[str, int] = field(default_factory=dict)
    tag_limits: Mapping[str, int] = field(default_factory=dict)
    task_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_registry(
        cls, registry: Registry, tag_limits: Mapping[str, int]
    ) -> "ConcurrencyLimits":
        task_limits: dict[str, int] = {}
        task_tags: dict[str, tuple[str, ...]] = {}
        for name, definition in registry.snapshot().items():
            task_tags[name] = definition.tags
            if definition.options.max_concurrency is not None:
                task_limits[name] = definition.options.max_concurrency
        return cls(task_limits, dict(tag_limits), task_tags)

    @property
    def active(self) -> bool:
        return bool(self.task_limits) or any(
            tag in self.tag_limits for tags in self.task_tags.values() for tag in tags
        )

    def has_room(self, task_name: str, counts: Mapping[str, int]) -> bool:
        limit = self.task_limits.get(task_name)
        if limit is not None and counts.get(task_name, 0) >= limit:
            return False
        for tag in self.task_tags.get(task_name, ()):
            tag_limit = self.tag_limits.get(tag)
            if tag_limit is not None and self._tag_count(tag, counts) >= tag_limit:
                return False
        return True

    def blocked(self, counts: Mapping[str, int]) -> set[str]:
        return {name for name in self.task_tags if not self.has_room(name, counts)}

    def _tag_count(self, tag: str, counts: Mapping[str, int]) -> int:
        return sum(n for name, n in counts.items() if tag in self.task_tags.get(name, ()))
