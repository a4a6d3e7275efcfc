"""An artifact's subtree, read level by level within depth and size bounds."""

from app.artifacts.hierarchy import ArtifactHierarchy
from app.artifacts.models import Artifact
from app.artifacts.repository import ArtifactRepository
from app.artifacts.schemas import ArtifactNode, ArtifactTree

MAX_TREE_NODES = 1000
MAX_TREE_DEPTH = 32


async def read_tree(
    repo: ArtifactRepository,
    root: Artifact,
    hierarchy: ArtifactHierarchy,
    *,
    depth: int,
    max_nodes: int = MAX_TREE_NODES,
) -> ArtifactTree:
    """`root` with its descendants down to `depth` levels below it, at most `max_nodes` nodes
    in all (one query per level)."""
    nodes = {root.id: _node(root, hierarchy)}
    frontier = [root.id]
    truncated = False
    for _ in range(depth):
        room = max_nodes - len(nodes)
        if not frontier or room <= 0:
            truncated = truncated or bool(frontier)
            break
        children = await repo.children_of(frontier, limit=room + 1)
        if len(children) > room:
            truncated = True
            children = children[:room]
        frontier = []
        for child in children:
            if child.id in nodes or child.parent_id not in nodes:
                continue
            node = _node(child, hierarchy)
            nodes[child.id] = node
            nodes[child.parent_id].children.append(node)
            frontier.append(child.id)
    else:
        truncated = truncated or bool(frontier and await repo.children_of(frontier, limit=1))
    return ArtifactTree(
        hierarchy=hierarchy.name,
        level_labels=list(hierarchy.level_labels),
        root=nodes[root.id],
        node_count=len(nodes),
        truncated=truncated,
    )


def _node(artifact: Artifact, hierarchy: ArtifactHierarchy) -> ArtifactNode:
    return ArtifactNode(
        id=artifact.id,
        job_id=artifact.job_id,
        name=artifact.name,
        kind=artifact.kind,
        description=artifact.description,
        level=artifact.level,
        label=hierarchy.label(artifact.level),
        created_at=artifact.created_at,
        children=[],
    )
