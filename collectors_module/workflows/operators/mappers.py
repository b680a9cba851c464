"""Knowledge-graph mappers: `concept-synonym-mapper`, `concept-hypernym-mapper`, `concept-hyponym-mapper`.

Relations come in as plain tuples (subject, predicate, object, knowledge_graph_id), read from the
app's ConceptRelation rows by the executor. 'honey hyponym food' means honey is a kind of food;
'food hypernym honey' says the same thing the other way round; synonyms work both ways. So:

  synonym mapper:  c -> x for 'c synonym x' and 'x synonym c'
  hypernym mapper: c -> x (more general) for 'c hyponym x' and 'x hypernym c'
  hyponym mapper:  c -> x (more specific) for 'x hyponym c' and 'c hypernym x'

A mapped concept keeps the value of the concept it came from (the highest, when several map to
it). Concepts with no mapping are left out; the same happens inside regions (a region with no
mapped concept is removed). An input with no mapped concept at all is dropped. When
`knowledge_graph_id` is set, only relations carrying that id are followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clarifai_grpc.grpc.api import resources_pb2

from ._params import string

Relation = tuple[str, str, str, str]  # (subject, predicate, object, knowledge_graph_id)
DIRECTIONS = {
    "concept-synonym-mapper": "synonym",
    "concept-hypernym-mapper": "hypernym",
    "concept-hyponym-mapper": "hyponym",
}


@dataclass(frozen=True)
class Config:
    mapping: dict[str, tuple[str, ...]]  # concept id -> mapped concept ids, in a stable order
    knowledge_graph_id: str = ""


def build_mapping(
    direction: str, relations: Iterable[Relation], knowledge_graph_id: str = ""
) -> dict[str, tuple[str, ...]]:
    edges: dict[str, list[str]] = {}

    def add(src: str, dst: str) -> None:
        targets = edges.setdefault(src, [])
        if dst != src and dst not in targets:
            targets.append(dst)

    for subject, predicate, obj, kg in relations:
        if knowledge_graph_id and kg != knowledge_graph_id:
            continue
        predicate = (predicate or "").lower()
        if direction == "synonym" and predicate == "synonym":
            add(subject, obj)
            add(obj, subject)
        elif direction == "hypernym":
            if predicate == "hyponym":
                add(subject, obj)
            elif predicate == "hypernym":
                add(obj, subject)
        elif direction == "hyponym":
            if predicate == "hyponym":
                add(obj, subject)
            elif predicate == "hypernym":
                add(subject, obj)
    return {k: tuple(v) for k, v in edges.items()}


def parse(model_type_id: str, params: dict, relations: Iterable[Relation] = ()) -> Config:
    kg = string(params, "knowledge_graph_id", "")
    return Config(
        mapping=build_mapping(DIRECTIONS[model_type_id], relations, kg), knowledge_graph_id=kg
    )


def map_concepts(concepts, mapping: dict[str, tuple[str, ...]]) -> list[resources_pb2.Concept]:
    best: dict[str, float] = {}
    for concept in concepts:
        targets = mapping.get(concept.id) or (mapping.get(concept.name) if concept.name else None)
        for target in targets or ():
            if target not in best or concept.value > best[target]:
                best[target] = concept.value
    return [resources_pb2.Concept(id=t, name=t, value=v) for t, v in best.items()]


def apply(data: resources_pb2.Data, config: Config, *, seed_key: str = "") -> resources_pb2.Data:
    mapped = map_concepts(data.concepts, config.mapping)
    regions = []
    for region in data.regions:
        region_mapped = map_concepts(region.data.concepts, config.mapping)
        if region_mapped:
            r = resources_pb2.Region()
            r.CopyFrom(region)
            del r.data.concepts[:]
            r.data.concepts.extend(region_mapped)
            regions.append(r)
    if not mapped and not regions:
        return resources_pb2.Data()
    out = resources_pb2.Data()
    out.CopyFrom(data)
    del out.concepts[:]
    out.concepts.extend(mapped)
    del out.regions[:]
    out.regions.extend(regions)
    return out
