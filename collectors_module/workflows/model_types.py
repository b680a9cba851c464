"""The catalogue of model types: what each type takes and gives, and the fields that configure it.

One description drives three things: `ListModelTypes` / `GetModelType` (as `ModelType` messages),
the Workflow Builder's generated forms, and the validation of operator parameters. A field's
`path` is where its value lives in a model's `output_info` (e.g. `output_info.params.keep_fraction`
or `output_info.data.concepts`), so a form can write it straight into a `PostModels` body or a
node's `output_info_override`.

Field types are the names of `ModelTypeField.ModelTypeFieldType` (NUMBER, RANGE, BOOLEAN, STRING,
ENUM, JSON, ARRAY_OF_CONCEPTS_WITH_THRESHOLD, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import struct_pb2

from collectors_module.core.errors import SC, ApiError

PARAMS = "output_info.params."
CONCEPTS = "output_info.data.concepts"


@dataclass(frozen=True)
class EnumOption:
    id: str
    description: str = ""
    aliases: tuple[str | int, ...] = ()  # other spellings accepted, e.g. the enum number


@dataclass(frozen=True)
class FieldSpec:
    path: str
    type: str  # a ModelTypeFieldType name
    default: Any = None
    description: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: tuple[EnumOption, ...] = ()
    required: bool = False
    placeholder: str = ""

    @property
    def name(self) -> str:
        """The last part of the path (`keep_fraction`), handy as a form field name."""
        return self.path.rsplit(".", 1)[-1]

    @property
    def is_param(self) -> bool:
        return self.path.startswith(PARAMS)


@dataclass(frozen=True)
class ModelTypeSpec:
    id: str
    title: str
    description: str
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    fields: tuple[FieldSpec, ...] = ()
    operator: bool = False  # a fixed function run by the workflow executor, no runner
    creatable: bool = True

    def field(self, path_or_name: str) -> FieldSpec | None:
        for f in self.fields:
            if path_or_name in (f.path, f.name):
                return f
        return None


# ValueComparator, the `concept_threshold_type` enum (resources_pb2.GREATER_THAN == 1 ...).
THRESHOLD_TYPES: tuple[EnumOption, ...] = (
    EnumOption("GREATER_THAN", "keep a concept whose value is > its threshold", (1, ">")),
    EnumOption(
        "GREATER_THAN_OR_EQUAL", "keep a concept whose value is >= its threshold", (2, ">=")
    ),
    EnumOption("LESS_THAN", "keep a concept whose value is < its threshold", (3, "<")),
    EnumOption("LESS_THAN_OR_EQUAL", "keep a concept whose value is <= its threshold", (4, "<=")),
    EnumOption("EQUAL", "keep a concept whose value equals its threshold", (5, "=", "==")),
)

_KG_FIELD = FieldSpec(
    PARAMS + "knowledge_graph_id",
    "STRING",
    default="",
    description=(
        "Follow only the concept relations that carry this knowledge_graph_id; empty follows every "
        "relation of the app's knowledge graph."
    ),
    placeholder="(all relations)",
)

# Output options shared by the built-in classifiers.
_MAX_CONCEPTS_FIELD = FieldSpec(
    PARAMS + "max_concepts",
    "NUMBER",
    default=20,
    min=1,
    max=200,
    step=1,
    description="Return at most this many concepts, highest first.",
)


def _min_value_field(description: str) -> FieldSpec:
    return FieldSpec(
        PARAMS + "min_value",
        "RANGE",
        default=0.0,
        min=0.0,
        max=1.0,
        step=0.01,
        description=description,
    )


METADATA_CONDITIONS_HELP = (
    'A JSON list of conditions on the input metadata, e.g. [{"key": "camera.site", "op": "equals", '
    '"value": "north"}, {"key": "reviewed", "op": "not_exists"}, {"key": "lang", "op": "in", '
    '"value": ["en", "fr"]}]. "key" is a dotted path into nested metadata objects; "op" is one of '
    "equals, not_equals, exists, not_exists, in, not_in (default: equals when a value is given, "
    "exists otherwise). A condition on a missing key is false, except not_exists, not_equals and "
    "not_in, which are true."
)

_OVER_FIELD = FieldSpec(
    PARAMS + "over",
    "ENUM",
    default="auto",
    options=(
        EnumOption("auto", "the input's concepts, or its regions' concepts when it has none"),
        EnumOption("concepts", "the input's own concepts only"),
        EnumOption("regions", "each region's concepts; the most uncertain region decides"),
    ),
    description="Which concepts are scored: the input's, or each region's (e.g. a detector's).",
)

# (id, title, description, default threshold, threshold help) of the uncertainty operators.
_UNCERTAINTY = (
    (
        "least-confidence",
        "Uncertain predictions (least confidence)",
        "Lets an input through when 1 - (highest concept value) is above the threshold: the "
        "model's best guess is weak. An input without concepts is dropped.",
        0.5,
        "Keep when 1 - max(concept value) > threshold (equal is dropped).",
    ),
    (
        "margin-below",
        "Uncertain predictions (small margin)",
        "Lets an input through when the best concept leads the second by less than the "
        "threshold: two classes compete. A single concept's margin is its value. An input "
        "without concepts is dropped.",
        0.1,
        "Keep when top value - second value < threshold (equal is dropped).",
    ),
    (
        "entropy-above",
        "Uncertain predictions (entropy)",
        "Lets an input through when the entropy of its concept values (normalised to sum to 1, "
        "divided by ln(number of concepts), so from 0 to 1) is above the threshold: the "
        "prediction is spread over many classes. One concept has entropy 0. An input without "
        "concepts is dropped.",
        0.8,
        "Keep when the normalised entropy > threshold (equal is dropped).",
    ),
)

MODEL_TYPES: list[ModelTypeSpec] = [
    ModelTypeSpec(
        id="random-sample",
        title="Random sample",
        description=(
            "Lets through a random fraction of the inputs. The draw is derived from a stable key "
            "(the capture or input id, plus the optional seed), so retrying the same input gives the "
            "same decision and a run can be reproduced."
        ),
        input_fields=("any",),
        output_fields=("any",),
        operator=True,
        fields=(
            FieldSpec(
                PARAMS + "keep_fraction",
                "RANGE",
                default=1.0,
                min=0.0,
                max=1.0,
                step=0.01,
                required=True,
                description=(
                    "Average fraction of inputs let through: 0 keeps nothing, 1 keeps everything, "
                    "0.1 keeps about one input in ten."
                ),
            ),
            FieldSpec(
                PARAMS + "seed",
                "STRING",
                default="",
                description=(
                    "Optional seed mixed into every draw; change it to sample a different subset of "
                    "the same inputs."
                ),
                placeholder="(none)",
            ),
        ),
    ),
    ModelTypeSpec(
        id="metadata-filter",
        title="Metadata filter",
        description=(
            "Lets through an input whose metadata matches the conditions: equality, presence or "
            "absence of a key, and lists of allowed values, on nested keys by dotted path."
        ),
        input_fields=("any",),
        output_fields=("any",),
        operator=True,
        fields=(
            FieldSpec(
                PARAMS + "conditions",
                "JSON",
                default=[],
                required=True,
                description=METADATA_CONDITIONS_HELP,
                placeholder='[{"key": "source", "op": "equals", "value": "mobile"}]',
            ),
            FieldSpec(
                PARAMS + "match",
                "ENUM",
                default="all",
                options=(
                    EnumOption("all", "every condition must hold"),
                    EnumOption("any", "at least one condition must hold"),
                ),
                description="Whether all conditions or any one of them must hold.",
            ),
        ),
    ),
    ModelTypeSpec(
        id="concept-thresholder",
        title="Concept thresholder",
        description=(
            "Keeps the concepts (also inside regions) whose value passes the concept's threshold "
            "under the comparison chosen. An input whose concepts are all filtered out is dropped; a "
            "region whose concepts are all filtered out is removed."
        ),
        input_fields=("concepts",),
        output_fields=("concepts",),
        operator=True,
        fields=(
            FieldSpec(
                CONCEPTS,
                "ARRAY_OF_CONCEPTS_WITH_THRESHOLD",
                default=[],
                required=True,
                description=(
                    "Per-concept thresholds as [{id, value}], value in [0, 1] (0 when left out). "
                    "Concepts are matched by id (or by name)."
                ),
                min=0.0,
                max=1.0,
                step=0.01,
            ),
            FieldSpec(
                PARAMS + "concept_threshold_type",
                "ENUM",
                default="GREATER_THAN",
                options=THRESHOLD_TYPES,
                description=(
                    "How a concept's value is compared with its threshold; given as a name "
                    "(GREATER_THAN) or its number (GREATER_THAN=1 ... EQUAL=5)."
                ),
            ),
            FieldSpec(
                PARAMS + "filter_other_concepts",
                "BOOLEAN",
                default=False,
                description=(
                    "Also drop concepts that have no threshold here; when off they pass through "
                    "unchanged."
                ),
            ),
        ),
    ),
    ModelTypeSpec(
        id="max-probability-below",
        title="Uncertain predictions (max probability below)",
        description=(
            "Lets an input through when its highest concept probability is below the threshold: "
            "the uncertain predictions a model learns most from. An input without concepts is "
            "dropped."
        ),
        input_fields=("concepts",),
        output_fields=("concepts",),
        operator=True,
        fields=(
            FieldSpec(
                PARAMS + "threshold",
                "RANGE",
                default=0.5,
                min=0.0,
                max=1.0,
                step=0.01,
                required=True,
                description="Keep when max(concept value) < threshold (equal is dropped).",
            ),
        ),
    ),
    ModelTypeSpec(
        id="max-probability-above",
        title="Confident predictions (max probability above)",
        description=(
            "Lets an input through when its highest concept probability is above the threshold: "
            "confident predictions, e.g. for auto-labelling. An input without concepts is dropped."
        ),
        input_fields=("concepts",),
        output_fields=("concepts",),
        operator=True,
        fields=(
            FieldSpec(
                PARAMS + "threshold",
                "RANGE",
                default=0.9,
                min=0.0,
                max=1.0,
                step=0.01,
                required=True,
                description="Keep when max(concept value) > threshold (equal is dropped).",
            ),
        ),
    ),
    *(
        ModelTypeSpec(
            id=type_id,
            title=title,
            description=description,
            input_fields=("concepts",),
            output_fields=("concepts",),
            operator=True,
            fields=(
                FieldSpec(
                    PARAMS + "threshold",
                    "RANGE",
                    default=default,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    required=True,
                    description=threshold_help,
                ),
                _OVER_FIELD,
            ),
        )
        for type_id, title, description, default, threshold_help in _UNCERTAINTY
    ),
    ModelTypeSpec(
        id="class-quota",
        title="Class-balanced quota",
        description=(
            "Keeps at most N captures per concept per hour or per day, counted across every "
            "process in Redis, so a flood of the common class cannot crowd out the rare ones. An "
            "input counts under its top concept, or under each concept at or above the "
            "threshold; it is kept while one of them has room and dropped as "
            "class_quota:<concept> when all are full. Counted only by collectors (try it and "
            "PostWorkflowResults let inputs through); put it last in the workflow."
        ),
        input_fields=("concepts",),
        output_fields=("concepts",),
        operator=True,
        fields=(
            FieldSpec(
                PARAMS + "max_per_window",
                "NUMBER",
                default=100,
                min=1,
                max=1_000_000,
                step=1,
                required=True,
                description="Captures kept per concept in each window.",
            ),
            FieldSpec(
                PARAMS + "window",
                "ENUM",
                default="hour",
                options=(
                    EnumOption("hour", "per clock hour (UTC)"),
                    EnumOption("day", "per day (UTC)"),
                ),
                description="The counting window; counts start again when it ends.",
            ),
            FieldSpec(
                PARAMS + "per",
                "ENUM",
                default="top",
                options=(
                    EnumOption("top", "count under the top concept only"),
                    EnumOption("above", "count under every concept at or above the threshold"),
                ),
                description="Which concepts an input counts under.",
            ),
            FieldSpec(
                PARAMS + "threshold",
                "RANGE",
                default=0.5,
                min=0.0,
                max=1.0,
                step=0.01,
                description="With per = above: the value a concept needs to count.",
            ),
        ),
    ),
    ModelTypeSpec(
        id="near-duplicate",
        title="Near-duplicate filter",
        description=(
            "Drops a capture whose content is already in the collector's app: the same bytes, the "
            "same text ignoring case and spacing, or an image whose perceptual hash is within "
            "max_distance bits. Looked up in the worker (a workflow with this node never runs "
            "inline); without a collector (Try it) inputs pass."
        ),
        input_fields=("any",),
        output_fields=("any",),
        operator=True,
        fields=(
            FieldSpec(
                PARAMS + "max_distance",
                "NUMBER",
                default=4,
                min=0,
                max=11,
                step=1,
                description="Perceptual-hash bits that may differ (4: re-encoded or slightly "
                "edited copies).",
            ),
        ),
    ),
    ModelTypeSpec(
        id="concept-synonym-mapper",
        title="Concept synonym mapper",
        description=(
            "Maps each concept to its synonyms in the app's knowledge graph (synonym relations "
            "work both ways), keeping the value. Concepts without a synonym are left out; an input "
            "with no mapped concept is dropped."
        ),
        input_fields=("concepts",),
        output_fields=("concepts",),
        operator=True,
        fields=(_KG_FIELD,),
    ),
    ModelTypeSpec(
        id="concept-hypernym-mapper",
        title="Concept hypernym mapper",
        description=(
            "Maps each concept to its hypernyms, the more general concepts ('honey' -> 'food' for "
            "'honey hyponym food' or 'food hypernym honey'), keeping the value. Unmapped concepts "
            "are left out; an input with no mapped concept is dropped."
        ),
        input_fields=("concepts",),
        output_fields=("concepts",),
        operator=True,
        fields=(_KG_FIELD,),
    ),
    ModelTypeSpec(
        id="concept-hyponym-mapper",
        title="Concept hyponym mapper",
        description=(
            "Maps each concept to its hyponyms, the more specific concepts ('food' -> 'honey' for "
            "'honey hyponym food'), keeping the value. Unmapped concepts are left out; an input "
            "with no mapped concept is dropped."
        ),
        input_fields=("concepts",),
        output_fields=("concepts",),
        operator=True,
        fields=(_KG_FIELD,),
    ),
    ModelTypeSpec(
        id="visual-classifier",
        title="Visual classifier",
        description="Predicts concepts with a probability for a whole image.",
        input_fields=("image",),
        output_fields=("concepts",),
        creatable=False,
        fields=(
            _MAX_CONCEPTS_FIELD,
            _min_value_field("Leave out concepts whose probability is below this value."),
        ),
    ),
    ModelTypeSpec(
        id="visual-detector",
        title="Visual detector",
        description="Finds regions (bounding boxes) in an image, each with concepts.",
        input_fields=("image",),
        output_fields=("regions[...].region_info.bounding_box", "regions[...].data.concepts"),
        creatable=False,
        fields=(_min_value_field("Leave out regions whose best concept is below this value."),),
    ),
    ModelTypeSpec(
        id="visual-embedder",
        title="Visual embedder",
        description=(
            "Turns an image into a vector (data.embeddings); the cosine similarity of two "
            "images' vectors says how alike they look (near-duplicates score close to 1)."
        ),
        input_fields=("image",),
        output_fields=("embeddings",),
        creatable=False,
    ),
    ModelTypeSpec(
        id="image-to-text",
        title="Image to text",
        description="Produces text from an image (a caption, or the text read in the image).",
        input_fields=("image",),
        output_fields=("text",),
        creatable=False,
    ),
    ModelTypeSpec(
        id="text-classifier",
        title="Text classifier",
        description="Predicts concepts with a probability for a text (e.g. sentiment).",
        input_fields=("text",),
        output_fields=("concepts",),
        creatable=False,
        fields=(_MAX_CONCEPTS_FIELD,),
    ),
]

MODEL_TYPES_BY_ID: dict[str, ModelTypeSpec] = {spec.id: spec for spec in MODEL_TYPES}
OPERATOR_TYPES: frozenset[str] = frozenset(spec.id for spec in MODEL_TYPES if spec.operator)


def get_model_type(model_type_id: str) -> ModelTypeSpec | None:
    return MODEL_TYPES_BY_ID.get(model_type_id)


def defaults(spec: ModelTypeSpec) -> dict[str, Any]:
    """The default `output_info.params` of a type (what a new operator model starts from)."""
    return {f.name: f.default for f in spec.fields if f.is_param and f.default is not None}


def parse_form_value(f: FieldSpec, raw: str) -> Any:
    """A form's text for field `f` as the JSON value `output_info` holds; ApiError(field=path)
    when it does not fit. Concepts with thresholds are written one per line as `id` or
    `id: value` (or `id=value`); empty text gives the field's default."""

    def bad(details: str) -> ApiError:
        return ApiError(SC.MODEL_INVALID_ARGUMENT, f"{f.name}: {details}", field=f.path)

    text = (raw or "").strip()
    if not text:
        return f.default
    if f.type in ("NUMBER", "RANGE"):
        try:
            value = float(text)
        except ValueError:
            raise bad("enter a number") from None
        if (f.min is not None and value < f.min) or (f.max is not None and value > f.max):
            raise bad(f"enter a number from {f.min:g} to {f.max:g}")
        return int(value) if f.step == 1 and value.is_integer() else value
    if f.type == "BOOLEAN":
        if text.lower() in ("true", "on", "1", "yes"):
            return True
        if text.lower() in ("false", "off", "0", "no"):
            return False
        raise bad("choose true or false")
    if f.type == "ENUM":
        for opt in f.options:
            if text == opt.id or text in {str(a) for a in opt.aliases}:
                return opt.id
        raise bad("choose one of " + ", ".join(o.id for o in f.options))
    if f.type == "JSON":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise bad(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if f.type in ("ARRAY_OF_CONCEPTS_WITH_THRESHOLD", "ARRAY_OF_CONCEPTS"):
        concepts = []
        for line in text.replace(",", "\n").splitlines():
            line = line.strip()
            if not line:
                continue
            cid, sep, value = line.replace("=", ":").partition(":")
            concept: dict[str, Any] = {"id": cid.strip()}
            if sep:
                try:
                    concept["value"] = float(value)
                except ValueError:
                    raise bad(f"'{value.strip()}' is not a number (write id: value)") from None
                if not 0.0 <= concept["value"] <= 1.0:
                    raise bad(f"the value of '{concept['id']}' must be from 0 to 1")
            if not concept["id"]:
                raise bad("a concept needs an id")
            concepts.append(concept)
        return concepts
    return text


def output_info_from_form(spec: ModelTypeSpec, form: dict[str, str]) -> dict:
    """`output_info` ({"params": ..., "data": {"concepts": ...}}) from form texts keyed by field
    name (or path): what the builder's generated form posts for an operator node."""
    params: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for f in spec.fields:
        raw = form.get(f.name, form.get(f.path, ""))
        value = parse_form_value(f, raw)
        if value is None:
            continue
        if f.is_param:
            params[f.name] = value
        elif f.path == CONCEPTS:
            info["data"] = {"concepts": value}
    if params:
        info["params"] = params
    return info


def form_value(f: FieldSpec, output_info: dict | None) -> str:
    """The text a form shows for field `f` of a stored `output_info` (inverse of parse_form_value)."""

    info = output_info or {}
    if f.is_param:
        value = (info.get("params") or {}).get(f.name, f.default)
    elif f.path == CONCEPTS:
        value = (info.get("data") or {}).get("concepts", f.default)
    else:
        value = f.default
    if value is None:
        return ""
    if f.type in ("ARRAY_OF_CONCEPTS_WITH_THRESHOLD", "ARRAY_OF_CONCEPTS"):
        return "\n".join(
            f"{c.get('id', '')}: {c.get('value', 0.0):g}"
            if "value" in c or f.type.endswith("THRESHOLD")
            else str(c.get("id", ""))
            for c in value
        )
    if f.type == "JSON":
        return json.dumps(value)
    if f.type == "BOOLEAN":
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and f.step == 1:
        return str(int(value))
    return str(value) if not isinstance(value, float) else f"{value:g}"


_FIELD_TYPE = resources_pb2.ModelTypeField.ModelTypeFieldType


def _value(v: Any) -> struct_pb2.Value:
    holder = struct_pb2.Struct()
    holder.update({"v": v})
    return holder.fields["v"]


def field_to_pb(f: FieldSpec) -> resources_pb2.ModelTypeField:
    pb = resources_pb2.ModelTypeField(
        path=f.path,
        field_type=_FIELD_TYPE.Value(f.type),
        description=f.description,
        placeholder=f.placeholder,
        required=f.required,
        name=f.name,
        is_param=f.is_param,
    )
    if f.default is not None:
        pb.default_value.CopyFrom(_value(f.default))
    if f.min is not None or f.max is not None or f.step is not None:
        pb.model_type_range_info.CopyFrom(
            resources_pb2.ModelTypeRangeInfo(min=f.min or 0.0, max=f.max or 0.0, step=f.step or 0.0)
        )
    for opt in f.options:
        option = pb.model_type_enum_options.add(id=opt.id, description=opt.description)
        for alias in opt.aliases:
            if isinstance(alias, int):
                option.aliases.add(id_int=alias)
            else:
                option.aliases.add(wildcard_string=alias)
    return pb


def model_type_to_pb(spec: ModelTypeSpec) -> resources_pb2.ModelType:
    return resources_pb2.ModelType(
        id=spec.id,
        title=spec.title,
        description=spec.description,
        input_fields=list(spec.input_fields),
        output_fields=list(spec.output_fields),
        trainable=False,
        creatable=spec.creatable,
        model_type_fields=[field_to_pb(f) for f in spec.fields],
    )


__all__ = [
    "MODEL_TYPES",
    "MODEL_TYPES_BY_ID",
    "OPERATOR_TYPES",
    "THRESHOLD_TYPES",
    "EnumOption",
    "FieldSpec",
    "ModelTypeSpec",
    "defaults",
    "field_to_pb",
    "form_value",
    "get_model_type",
    "model_type_to_pb",
    "output_info_from_form",
    "parse_form_value",
]
