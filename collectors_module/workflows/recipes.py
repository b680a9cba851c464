"""Ready-made workflows ("recipes"): the product page's common pre-queue workflows and an
image-to-text (captioning) post-queue workflow, for the Workflow Builder's templates.

A recipe lists nodes by kind: an operator type with its parameters, a built-in model of
builtin/main, or `SOURCE` (the collector's source model; a built-in classifier stands in when
none is given). `services.workflow_create_from_recipe` makes the operator models (ids
"<workflow id>-<node id>") and the workflow in one transaction.

Pre-queue workflows are evaluated on the source model's OUTPUT, so their operators can read the
prediction directly; a SOURCE node makes that explicit and lets PostWorkflowResults ("try it")
run the same graph on an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

SOURCE = "source"
DEFAULT_SOURCE_MODEL = "color-recognition"  # a built-in visual classifier of builtin/main


@dataclass(frozen=True)
class RecipeNode:
    node_id: str
    model_type_id: str = ""  # an operator type
    builtin_model_id: str = ""  # or a built-in model of builtin/main
    source: bool = False  # or the collector's source model
    params: dict = field(default_factory=dict)
    concepts: tuple[dict, ...] = ()
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    id: str
    title: str
    description: str
    stage: str  # "pre-queue" or "post-queue"
    nodes: tuple[RecipeNode, ...]
    # (node id, parameter name) the builder asks for when it makes the workflow; "concepts"
    # names the node's concept thresholds.
    key_param: tuple[str, str] | None = None

    @property
    def key_node(self) -> RecipeNode | None:
        if not self.key_param:
            return None
        return next(n for n in self.nodes if n.node_id == self.key_param[0])

    def key_default(self):
        node = self.key_node
        if node is None:
            return None
        if self.key_param[1] == "concepts":
            return list(node.concepts)
        return node.params.get(self.key_param[1])

    def with_key_value(self, value) -> Recipe:
        """This recipe with its key parameter set to `value` (a JSON value)."""
        node_id, name = self.key_param
        nodes = []
        for n in self.nodes:
            if n.node_id == node_id:
                if name == "concepts":
                    n = replace(n, concepts=tuple(value))
                else:
                    n = replace(n, params={**n.params, name: value})
            nodes.append(n)
        return replace(self, nodes=tuple(nodes))


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "random-sample",
        "Randomly sample inputs",
        "Keeps about a tenth of the predictions (change keep_fraction), the same decision for a "
        "retried capture.",
        "pre-queue",
        (RecipeNode("sample", "random-sample", params={"keep_fraction": 0.1}),),
        key_param=("sample", "keep_fraction"),
    ),
    Recipe(
        "metadata-filter",
        "Filter inputs by metadata",
        "Keeps inputs whose metadata matches the conditions (here: metadata.source is 'mobile').",
        "pre-queue",
        (
            RecipeNode(
                "metadata",
                "metadata-filter",
                params={"conditions": [{"key": "source", "op": "equals", "value": "mobile"}]},
            ),
        ),
        key_param=("metadata", "conditions"),
    ),
    Recipe(
        "uncertain-predictions",
        "Uncertain predictions (maximum probability below a threshold)",
        "Keeps predictions whose best concept is below 0.5: the inputs a model learns most from.",
        "pre-queue",
        (
            RecipeNode("source", source=True),
            RecipeNode(
                "uncertain", "max-probability-below", params={"threshold": 0.5}, inputs=("source",)
            ),
        ),
        key_param=("uncertain", "threshold"),
    ),
    Recipe(
        "confident-predictions",
        "Confident predictions (maximum probability above a threshold)",
        "Keeps predictions whose best concept is above 0.9, e.g. to label data automatically.",
        "pre-queue",
        (
            RecipeNode("source", source=True),
            RecipeNode(
                "confident", "max-probability-above", params={"threshold": 0.9}, inputs=("source",)
            ),
        ),
        key_param=("confident", "threshold"),
    ),
    Recipe(
        "concepts-above-threshold",
        "Specific concepts above a threshold",
        "Keeps predictions where a chosen concept is above its threshold (edit the concepts).",
        "pre-queue",
        (
            RecipeNode("source", source=True),
            RecipeNode(
                "threshold",
                "concept-thresholder",
                params={"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
                concepts=({"id": "red", "value": 0.5},),
                inputs=("source",),
            ),
        ),
        key_param=("threshold", "concepts"),
    ),
    Recipe(
        "knowledge-graph-mapping",
        "Map public model concepts to a custom model's concepts",
        "Maps the public model's concepts to yours along synonym relations of the app's "
        "knowledge graph (add them on the Knowledge graph page); keeps an input when a mapped"
        " concept is above 0.5.",
        "pre-queue",
        (
            RecipeNode("source", source=True),
            RecipeNode(
                "mapper",
                "concept-synonym-mapper",
                params={"knowledge_graph_id": ""},
                inputs=("source",),
            ),
            RecipeNode(
                "confident", "max-probability-above", params={"threshold": 0.5}, inputs=("mapper",)
            ),
        ),
        key_param=("confident", "threshold"),
    ),
    Recipe(
        "close-calls",
        "Close calls (small margin between the two best concepts)",
        "Keeps predictions whose best concept leads the second by less than 0.1: the model "
        "hesitates between two classes (uncertainty sampling by margin).",
        "pre-queue",
        (
            RecipeNode("source", source=True),
            RecipeNode("margin", "margin-below", params={"threshold": 0.1}, inputs=("source",)),
        ),
        key_param=("margin", "threshold"),
    ),
    Recipe(
        "class-balanced",
        "Class-balanced sample (at most N per concept per hour)",
        "Keeps at most 100 captures per top concept each hour, so the common classes cannot "
        "crowd out the rare ones.",
        "pre-queue",
        (
            RecipeNode("source", source=True),
            RecipeNode("quota", "class-quota", params={"max_per_window": 100}, inputs=("source",)),
        ),
        key_param=("quota", "max_per_window"),
    ),
    Recipe(
        "image-to-text",
        "Image to text",
        "Captions each image in English (general-english-image-caption: template captions from "
        "the general-image-recognition concepts and the text OCR reads); the caption is added to "
        "the ingested input.",
        "post-queue",
        (RecipeNode("caption", builtin_model_id="general-english-image-caption"),),
    ),
)

RECIPES_BY_ID: dict[str, Recipe] = {r.id: r for r in RECIPES}


def get_recipe(recipe_id: str) -> Recipe | None:
    return RECIPES_BY_ID.get(recipe_id)
