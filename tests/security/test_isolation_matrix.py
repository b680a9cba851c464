"""Tenant isolation matrix, generated from the REST route table of the implemented RPCs.

Alice owns an app with an input, a model, a workflow, a collector, a concept relation and keys.
For every implemented (route, verb) that names a user, an app or an object, Bob -- a valid user
with an all-scopes key -- calls it with Alice's ids (and, for write routes, a body that names
Alice's objects or asks for `delete_all`). Every cell must answer "does not exist" (HTTP 404 with
a *_DOES_NOT_EXIST code), never leak Alice's objects, and leave Alice's state byte-for-byte as it
was. User-level list routes (no app in the path) may instead answer 2xx without any of Alice's
private objects. New routes join the matrix automatically when their RPC is implemented.
"""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

from collectors_module.api.descriptors import all_rpcs
from collectors_module.api.dispatch import implemented
from collectors_module.api.proto.collectors_ext_pb2_grpc import CollectorExtensionsStub
from collectors_module.api.rest.transport import route_table
from collectors_module.core.errors import SC

ALICE = "iso-alice"
BOB = "iso-bob"
APP = "alice-private-app"
INPUT = "alice-secret-input"
MODEL = "alice-secret-model"
WORKFLOW = "alice-secret-workflow"
COLLECTOR = "alice-secret-collector"
CONCEPT = "alice-secret-concept"
ANNOTATION = "alice-secret-annotation"
DATASET = "alice-secret-dataset"
DATASET_VERSION = "alice-secret-version"
SECRET_IDS = (APP, INPUT, MODEL, WORKFLOW, COLLECTOR, CONCEPT, ANNOTATION, DATASET)

DOES_NOT_EXIST = {
    SC.CONN_DOES_NOT_EXIST,
    SC.MODEL_DOES_NOT_EXIST,
    SC.WORKFLOW_DOES_NOT_EXIST,
    SC.INPUT_DOES_NOT_EXIST,
    SC.COLLECTOR_MISSING,
    SC.MODULE_DOES_NOT_EXIST,
}


_VAR = re.compile(r"\{([^}=]+)\}")
# Path variables that name nothing a tenant owns (model types are the same for everybody).
GLOBAL_VARS = {"model_type_id"}


def _cells() -> list[tuple[str, str, str, str]]:
    done = implemented()
    cells = []
    for template, verbs in sorted(route_table().items()):
        if not set(_VAR.findall(template)) - GLOBAL_VARS:
            continue  # no user, app or object named: nothing of Alice's to reach
        for verb, (name, body_rule) in sorted(verbs.items()):
            if name in done:
                cells.append((template, verb, name, body_rule))
    return cells


CELLS = _cells()


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 20, 20)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


class World:
    """Alice's objects, created through her own API calls (best effort per object type)."""

    def __init__(self, api, alice, bob):
        from collectors_module.accounts.services import key_create
        from collectors_module.applications.services import app_create

        self.api = api
        self.alice = alice
        self.app = app_create(owner=alice.user, app_id=APP)
        self.app_key = key_create(owner=alice.user, scopes=["All"], app=self.app).key
        self.pat = alice.key
        self.secret = alice.secret
        self.bob = bob
        self.bob_pat = bob.secret
        self.bob_app_key = key_create(owner=bob.user, scopes=["All"], app=bob.app).secret
        base = f"/v2/users/{ALICE}/apps/{APP}"
        self.created: dict[str, str] = {}
        png = _png()
        self._make(
            "input",
            f"{base}/inputs",
            {"inputs": [{"id": INPUT, "data": {"image": {"base64": png}}}]},
        )
        r = self._make(
            "model",
            f"{base}/models",
            {
                "model": {
                    "id": MODEL,
                    "model_type_id": "text-classifier",
                    "model_version": {"metadata": {"runner": "builtin:sentiment"}},
                }
            },
        )
        self.model_version = (r or {}).get("model", {}).get("model_version", {}).get("id", "0" * 32)
        r = self._make(
            "workflow",
            f"{base}/workflows",
            {
                "workflows": [
                    {
                        "id": WORKFLOW,
                        "nodes": [
                            {
                                "id": "n1",
                                "model": {
                                    "id": MODEL,
                                    "user_id": ALICE,
                                    "app_id": APP,
                                    "model_version": {"id": self.model_version},
                                },
                            }
                        ],
                    }
                ]
            },
        )
        workflows = (r or {}).get("workflows") or [{}]
        self.workflow_version = workflows[0].get("version", {}).get("id", "0" * 32)
        self._make(
            "collector",
            f"{base}/collectors",
            {
                "collectors": [
                    {
                        "id": COLLECTOR,
                        "pre_queue_random_sample": 1.0,
                        "collector_source": {
                            "api_post_model_outputs_collector_source": {
                                "model_user_id": ALICE,
                                "model_app_id": APP,
                                "model_id": MODEL,
                                "model_version_id": self.model_version,
                                "post_inputs_key_id": self.pat.public_id,
                                "caller_user_id": ALICE,
                            }
                        },
                    }
                ]
            },
        )
        self._make("concept", f"{base}/concepts", {"concepts": [{"id": CONCEPT, "name": "Secret"}]})
        self._make(
            "annotation",
            f"{base}/annotations",
            {
                "annotations": [
                    {"id": ANNOTATION, "input_id": INPUT, "data": {"concepts": [{"id": CONCEPT}]}}
                ]
            },
        )
        self._make("dataset", f"{base}/datasets", {"datasets": [{"id": DATASET}]})
        self._make(
            "dataset_input",
            f"{base}/datasets/{DATASET}/inputs",
            {"dataset_inputs": [{"input": {"id": INPUT}}]},
        )
        self._make(
            "dataset_version",
            f"{base}/datasets/{DATASET}/versions",
            {"dataset_versions": [{"id": DATASET_VERSION}]},
        )
        self._make(
            "relation",
            f"{base}/concepts/{CONCEPT}/relations",
            {"concept_relations": [{"object_concept": {"id": "other"}, "predicate": "hyponym"}]},
        )

    def _make(self, what: str, path: str, body: dict) -> dict | None:
        r = self.api.post(path, body, key=self.secret)
        if r["_http"] == 200 and r["status"]["code"] in (SC.SUCCESS, SC.MIXED_STATUS):
            self.created[what] = path
            return r
        return None

    # -- path variables and bodies -----------------------------------------------------------

    def value_for(self, var: str, rpc_name: str) -> str:
        leaf = var.rsplit(".", 1)[-1]
        if var.endswith("user_id"):
            return ALICE
        if var.endswith("app_id"):
            return APP
        if var == "version_id" or leaf == "version_id":
            return self.workflow_version if "Workflow" in rpc_name else self.model_version
        if leaf == "workflow_version_id":
            return self.workflow_version
        return {
            "collector_id": COLLECTOR,
            "input_id": INPUT,
            "model_id": MODEL,
            "workflow_id": WORKFLOW,
            "key_id": self.pat.public_id,
            "concept_id": CONCEPT,
            "annotation_id": ANNOTATION,
            "dataset_id": DATASET,
            "dataset_version_id": DATASET_VERSION,
            "model_type_id": "text-classifier",
            "id": "alice-deployment",
        }.get(leaf, "alice-object")

    def ids_for(self, rpc_name: str) -> list[str]:
        for word, ids in (
            ("Annotation", [ANNOTATION]),
            ("Input", [INPUT]),
            ("Model", [MODEL]),
            ("Workflow", [WORKFLOW]),
            ("Collector", [COLLECTOR]),
            ("Key", [self.pat.public_id, self.app_key.public_id]),
            ("App", [APP]),
            ("Concept", [CONCEPT]),
        ):
            if word in rpc_name:
                return ids
        return [INPUT]

    def body_for(self, rpc_name: str) -> dict:
        fields = all_rpcs()[rpc_name].request_cls.DESCRIPTOR.fields_by_name
        ids = self.ids_for(rpc_name)
        body: dict = {}
        if "ids" in fields:
            body["ids"] = ids
        if "delete_all" in fields:
            body["delete_all"] = True
        for name, value in (
            ("dataset_ids", [DATASET]),
            ("dataset_version_ids", [DATASET_VERSION]),
            ("input_ids", [INPUT]),
            ("dataset_inputs", [{"input": {"id": INPUT}}]),
            ("exports", [{"format": "COCO"}]),
            ("dataset_versions", [{"id": "bob-intruder-version"}]),
            ("dataset_id", DATASET),
        ):
            if name in fields and name not in body:
                body[name] = value
        if "action" in fields:
            body["action"] = "overwrite"
        creating = rpc_name.startswith("Post")
        for plural in (
            "inputs",
            "models",
            "workflows",
            "collectors",
            "keys",
            "apps",
            "concept_relations",
            "concepts",
            "annotations",
            "datasets",
        ):
            if plural not in fields:
                continue
            if plural == "inputs" and rpc_name in ("PostModelOutputs", "PostWorkflowResults"):
                body[plural] = [{"data": {"text": {"raw": "bob was here"}}}]
            elif plural == "concept_relations":
                body[plural] = [{"object_concept": {"id": "bob"}, "predicate": "hyponym"}]
            elif plural == "annotations":
                body[plural] = [
                    {
                        "id": ANNOTATION if not creating else "bob-intruder-annotation",
                        "input_id": INPUT,
                        "data": {"concepts": [{"id": "bob"}]},
                    }
                ]
            elif creating:
                body[plural] = [{"id": f"bob-intruder-{plural}", "description": "bob"}]
            else:
                body[plural] = [{"id": i, "description": "bob"} for i in ids]
        if "model" in fields and creating:
            body["model"] = {"id": "bob-intruder-model", "model_type_id": "text-classifier"}
        return body

    # -- Alice's state -----------------------------------------------------------------------

    def snapshot(self) -> str:
        base = f"/v2/users/{ALICE}/apps/{APP}"
        paths = [
            f"/v2/users/{ALICE}/apps",
            f"/v2/users/{ALICE}/keys",
            base,
            f"{base}/inputs",
            f"{base}/inputs/{INPUT}",
            f"{base}/models",
            f"{base}/models/{MODEL}/versions",
            f"{base}/workflows",
            f"{base}/collectors",
            f"{base}/collectors/{COLLECTOR}",
            f"{base}/concepts/relations",
            f"{base}/concepts",
            f"{base}/annotations",
            f"{base}/workflows/{WORKFLOW}/versions",
            f"/v2/users/{ALICE}",
            f"{base}/datasets",
            f"{base}/datasets/{DATASET}/inputs",
            f"{base}/datasets/{DATASET}/versions",
            f"/api/v2/users/{ALICE}/apps/{APP}/collectors/{COLLECTOR}/dataset",
        ]
        state = {}
        for path in paths:
            r = self.api.get(path, key=self.secret)
            r.pop("status", None)  # carries a fresh request id
            state[path] = r
        return json.dumps(state, sort_keys=True)


def _tenant(user_id: str, app_id: str):
    from collectors_module.accounts.services import key_create, user_create
    from collectors_module.applications.services import app_create

    user, _ = user_create(user_id=user_id, password="pw-for-tests-123", plan="professional")
    app = app_create(owner=user, app_id=app_id)
    created = key_create(owner=user, scopes=["All"], description="isolation matrix")
    return type(
        "Tenant", (), {"user": user, "app": app, "key": created.key, "secret": created.secret}
    )


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker):
    """Built once per module and committed (each test still runs in its own transaction, so a
    change Bob manages to make is both detected by the snapshot and rolled back)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from collectors_module.accounts.services import key_create
    from collectors_module.modules.models import Module
    from collectors_module.modules.services import installation_authorize, installation_create
    from tests.conftest import Api

    with django_db_blocker.unblock():
        get_user_model().objects.filter(username__in=[ALICE, BOB]).delete()  # an aborted run
        try:
            alice = _tenant(ALICE, "alice-other-app")
            bob = _tenant(BOB, "bob-app")
            world = World(Api(Client()), alice, bob)
            # An app key of Alice's OTHER app: same owner, but bound to another app (issue 15).
            world.sibling_app_key = key_create(
                owner=alice.user, scopes=["All"], app=alice.app, description="sibling app"
            ).secret
            module = Module.objects.filter(slug="collector").first()
            if module is not None:
                inst = installation_create(
                    module=module, app=world.app, user=alice.user, slug="collector"
                )
                installation_authorize(installation=inst, user=alice.user)
            relations = world.api.get(
                f"/v2/users/{ALICE}/apps/{APP}/concepts/relations", key=world.secret
            ).get("concept_relations", [])
            world.relation_id = relations[0]["id"] if relations else "alice-relation"
            yield world
        finally:
            get_user_model().objects.filter(username__in=[ALICE, BOB]).delete()


@pytest.fixture
def world(shared_world, db):
    return shared_world


def test_matrix_is_generated_from_the_route_table():
    names = {name for _, _, name, _ in CELLS}
    assert {"GetApp", "GetInput", "GetModel", "PostModelOutputs", "DeleteInputs"} <= names
    assert len(CELLS) >= 40


def test_alice_world_exists(world):
    """The matrix is only meaningful if Alice's objects were really created."""
    assert {
        "input",
        "model",
        "workflow",
        "collector",
        "relation",
        "concept",
        "annotation",
    } <= set(world.created), world.created
    assert (
        world.api.get(f"/v2/users/{ALICE}/apps/{APP}/inputs/{INPUT}", key=world.secret)["_http"]
        == 200
    )


@pytest.mark.parametrize(
    ("template", "verb", "rpc_name", "body_rule"),
    CELLS,
    ids=[f"{v.upper()} {t} {n}" for t, v, n, _ in CELLS],
)
def test_other_tenant_cannot_reach_or_change_alice_objects(
    world, template, verb, rpc_name, body_rule
):
    path = _VAR.sub(lambda m: world.value_for(m.group(1), rpc_name), template)
    assert "{" not in path, path
    names_user = "{user_app_id.user_id}" in template or "user_id}" in template
    key = world.bob_pat if names_user else world.bob_app_key
    body = world.body_for(rpc_name) if body_rule and verb != "get" else None

    before = world.snapshot() if verb != "get" else None
    r = world.api.call(verb.upper(), path, body=body, key=key)
    http, code = r["_http"], r.get("status", {}).get("code")
    if "/deployments/" in template:
        # Deployments are not a resource of this server: refused before any lookup.
        assert 400 <= http < 500, f"{verb.upper()} {path} as Bob -> HTTP {http}"
        assert world.snapshot() == before
        return
    user_level_list = "app_id}" not in template and template.endswith(
        ("/models", "/workflows", "/apps")
    )
    if user_level_list and 200 <= http < 300:
        text = json.dumps(r)
        leaked = [i for i in SECRET_IDS if i in text]
        assert not leaked, f"{verb.upper()} {path} as Bob leaked {leaked}: {text[:500]}"
    else:
        assert http == 404, f"{verb.upper()} {path} as Bob -> HTTP {http} {r.get('status')}"
        assert code in DOES_NOT_EXIST, f"{verb.upper()} {path} as Bob -> {r.get('status')}"
    if before is not None:
        assert world.snapshot() == before, f"{verb.upper()} {path} as Bob changed Alice's state"


# --------------------------------------------------------------------------- web pages

# URL kwargs that name something global (the module catalogue), not a tenant's object; a
# password-reset link's uid and token are checked by Django's token generator (an invalid one
# gets the "link is invalid" page), tested in tests/security/test_hardening.py.
GLOBAL_KWARGS = {"slug", "uidb64", "token"}


def _web_cells() -> list[str]:
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern)

    cells = []
    for route in walk(get_resolver().url_patterns):
        if route.startswith(("^", "v2/", "api/")):
            continue
        kwargs = set(re.findall(r"<(?:\w+:)?(\w+)>", route))
        if kwargs - GLOBAL_KWARGS:
            cells.append(route)
    return sorted(set(cells))


WEB_CELLS = _web_cells()


@pytest.fixture
def web_world(world):
    return world


def _web_value(world, name: str) -> str:
    return {
        "app_id": APP,
        "input_id": INPUT,
        "workflow_id": WORKFLOW,
        "collector_id": COLLECTOR,
        "key_id": world.pat.public_id,
        "relation_id": world.relation_id,
        "inst_slug": "collector",
        "node_id": "n1",
        "dataset_id": DATASET,
        "version_id": DATASET_VERSION,
        "fmt": "coco",
    }.get(name, "alice-object")


def _web_state(world) -> str:
    from collectors_module.modules.models import Installation

    installs = list(
        Installation.objects.filter(app=world.app).order_by("pk").values_list("slug", "key_id")
    )
    return world.snapshot() + json.dumps(installs)


def test_web_matrix_is_generated_from_the_url_conf():
    assert any("collector_id" in c for c in WEB_CELLS)
    assert any("input_id" in c for c in WEB_CELLS)
    assert any("key_id" in c for c in WEB_CELLS)


@pytest.mark.parametrize("route", WEB_CELLS)
def test_other_user_cannot_see_or_change_alice_pages(web_world, client, route):
    client.force_login(web_world.bob.user)
    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: _web_value(web_world, m.group(1)), route)
    before = _web_state(web_world)
    for method, extra in (("get", {}), ("get", {"HTTP_HX_REQUEST": "true"}), ("post", {})):
        form = {"app_id": APP, "id": COLLECTOR, "action": "deactivate", "confirm": "1"}
        response = (
            getattr(client, method)(path, form, **extra)
            if method == "post"
            else client.get(path, **extra)
        )
        assert response.status_code in (404, 405), (
            f"{method.upper()} {path} {extra} as Bob -> {response.status_code}"
        )
        body = response.content.decode(errors="replace")
        leaked = [i for i in (INPUT, WORKFLOW, COLLECTOR) if i in body and i not in path]
        assert not leaked, f"{method.upper()} {path} leaked {leaked}"
    assert _web_state(web_world) == before, f"{route} as Bob changed Alice's state"


GET_CELLS = [c for c in CELLS if c[1] == "get"]


@pytest.mark.parametrize(
    ("template", "verb", "rpc_name", "body_rule"),
    GET_CELLS,
    ids=[f"{t} {n}" for t, _, n, _ in GET_CELLS],
)
def test_control_alice_herself_reaches_the_same_paths(world, template, verb, rpc_name, body_rule):
    """Guards the matrix: its paths name real objects, so Bob's 404s are refusals, not typos."""
    path = _VAR.sub(lambda m: world.value_for(m.group(1), rpc_name), template)
    names_user = "user_id}" in template
    from collectors_module.accounts.services import key_create

    key = (
        world.secret
        if names_user
        else key_create(owner=world.alice.user, scopes=["All"], app=world.app).secret
    )
    r = world.api.get(path, key=key)
    assert r["_http"] == 200, f"GET {path} as Alice -> {r['_http']} {r.get('status')}"


# --------------------------------------------------------------------------- gRPC


def _grpc_cells() -> list[tuple[str, str, str]]:
    """One cell per implemented RPC with a binding that names Alice's things: (rpc, template,
    body rule), preferring the binding with the user in the path (gRPC has no default app)."""
    by_rpc: dict[str, tuple[str, str, str]] = {}
    for template, verb, name, body_rule in CELLS:
        if "/deployments/" in template:
            continue
        current = by_rpc.get(name)
        if current is None or ("user_id}" in template and "user_id}" not in current[1]):
            by_rpc[name] = (name, template, body_rule if verb != "get" else "")
    return sorted(by_rpc.values())


GRPC_CELLS = _grpc_cells()


@pytest.fixture(scope="module")
def grpc_stub(shared_world, tmp_path_factory):
    from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel
    from clarifai_grpc.grpc.api import service_pb2_grpc

    from collectors_module.api.grpc.server import ServerConfig, build_server
    from collectors_module.api.management.commands.devcert import write_dev_certs

    certs = write_dev_certs(tmp_path_factory.mktemp("iso-certs"))
    server, port = build_server(
        ServerConfig(
            address="127.0.0.1:0",
            cert_file=str(certs["cert"]),
            key_file=str(certs["key"]),
            max_workers=2,
            max_message_bytes=4 * 2**20,
        )
    )
    server.start()
    channel = ClarifaiChannel.get_grpc_channel(
        base=f"localhost:{port}", root_certificates_path=str(certs["ca"])
    )
    stubs = {
        "clarifai.api.V2": service_pb2_grpc.V2Stub(channel),
        "collectors.ext.v1.CollectorExtensions": CollectorExtensionsStub(channel),
    }
    yield lambda rpc_name: getattr(stubs[all_rpcs()[rpc_name].service], rpc_name)
    channel.close()
    server.stop(2).wait(5)


@pytest.mark.parametrize(
    ("rpc_name", "template", "body_rule"), GRPC_CELLS, ids=[c[0] for c in GRPC_CELLS]
)
def test_other_tenant_cannot_reach_alice_objects_over_grpc(
    world, grpc_stub, rpc_name, template, body_rule
):
    from collectors_module.core.protojson import from_dict, set_path

    data = world.body_for(rpc_name) if body_rule else {}
    for var in _VAR.findall(template):
        set_path(data, var, world.value_for(var, rpc_name))
    request = from_dict(data, all_rpcs()[rpc_name].request_cls)
    writes = not rpc_name.startswith(("Get", "List", "MyScopes"))
    before = world.snapshot() if writes else None
    response = grpc_stub(rpc_name)(
        request, metadata=(("authorization", f"Key {world.bob_pat}"),), timeout=30
    )
    assert response.status.code in DOES_NOT_EXIST, (
        f"{rpc_name} as Bob over gRPC -> {response.status}"
    )
    if writes:
        assert world.snapshot() == before, f"{rpc_name} as Bob over gRPC changed Alice's state"


@pytest.mark.parametrize(
    ("template", "verb", "rpc_name", "body_rule"),
    CELLS,
    ids=[f"{v.upper()} {t} {n}" for t, v, n, _ in CELLS],
)
def test_app_key_of_another_app_of_the_same_owner_cannot_reach_this_app(
    world, template, verb, rpc_name, body_rule
):
    """Alice's own app key, bound to her other app, on every route naming her private app's
    objects: "does not exist" (or, for PAT-only RPCs, insufficient scopes), never a change."""
    path = _VAR.sub(lambda m: world.value_for(m.group(1), rpc_name), template)
    body = world.body_for(rpc_name) if body_rule and verb != "get" else None
    before = world.snapshot() if verb != "get" else None
    r = world.api.call(verb.upper(), path, body=body, key=world.sibling_app_key)
    http, code = r["_http"], r.get("status", {}).get("code")
    if before is not None:
        assert world.snapshot() == before, f"{verb.upper()} {path} with the sibling key changed"
    text = json.dumps(r)
    if all_rpcs()[rpc_name].auth_type == "PATAuth":
        assert code == SC.CONN_INSUFFICIENT_SCOPES, f"{verb.upper()} {path} -> {r.get('status')}"
        return
    if "/deployments/" in template:
        assert 400 <= http < 500, f"{verb.upper()} {path} -> HTTP {http}"
        return
    if 200 <= http < 300:
        leaked = [i for i in SECRET_IDS if i in text and i not in path]
        assert not leaked, f"{verb.upper()} {path} with the sibling key leaked {leaked}"
        # Only the sibling app's own (empty) listings may answer 2xx; nothing of APP's objects.
        assert "app_id}" not in template, f"{verb.upper()} {path} -> HTTP {http}: {text[:300]}"
    else:
        assert http == 404, f"{verb.upper()} {path} -> HTTP {http} {r.get('status')}"
        assert code in DOES_NOT_EXIST, f"{verb.upper()} {path} -> {r.get('status')}"
