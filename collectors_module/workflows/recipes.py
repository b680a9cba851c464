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

from dataclasses import dataclass, field

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


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "random-sample",
        "Randomly sample inputs",
        "Keeps about a tenth of the predictions (change keep_fraction), the same decision for a "
        "retried capture.",
        "pre-queue",
        (RecipeNode("sample", "random-sample", params={"keep_fraction": 0.1}),),
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
