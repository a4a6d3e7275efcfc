"""`ArtifactHierarchy`: labelled levels for nested artifacts."""

from dataclasses import dataclass, field

# Nesting depth allowed when the hierarchy names no levels.
UNLABELLED_MAX_DEPTH = 32


@dataclass(frozen=True)
class ArtifactHierarchy:
    """Names the levels of nested artifacts: level 0 (a root) is `level_labels[0]`, its
    children `level_labels[1]`, and so on.

    ```python
    ServiceBuilder(...).with_artifacts(
        hierarchy=ArtifactHierarchy("experiments", ["experiment", "run", "metric"])
    )
    ```
    With labels, an artifact may nest at most `len(level_labels) - 1` levels deep; without
    them, up to 32 levels and every label is null. A flow's artifacts nest as its jobs do
    (one level per job, and one more for each job's named artifacts): levels past the labels
    have a null label.
    """

    name: str
    level_labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an artifact hierarchy needs a name")
        if any(not isinstance(label, str) or not label for label in self.level_labels):
            raise ValueError("level labels must be non-empty strings")

    @property
    def max_level(self) -> int:
        return len(self.level_labels) - 1 if self.level_labels else UNLABELLED_MAX_DEPTH - 1

    def label(self, level: int) -> str | None:
        return self.level_labels[level] if 0 <= level < len(self.level_labels) else None


DEFAULT_HIERARCHY = ArtifactHierarchy("artifacts")
