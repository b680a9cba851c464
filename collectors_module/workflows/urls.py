from django.urls import path

from .views import builder, knowledge_graph, try_it

app_name = "workflows"
_WF = "apps/<str:app_id>/workflows/<str:workflow_id>/"
urlpatterns = [
    path("apps/<str:app_id>/workflows/", builder.builder_view, name="builder"),
    path(_WF, builder.edit_view, name="edit"),
    path(_WF + "nodes/", builder.node_add_view, name="node_add"),
    path(_WF + "nodes/<str:node_id>/remove/", builder.node_remove_view, name="node_remove"),
    path(_WF + "nodes/<str:node_id>/edit/", builder.node_edit_view, name="node_edit"),
    path(_WF + "save/", builder.save_view, name="save"),
    path(_WF + "discard/", builder.discard_view, name="discard"),
    path(_WF + "delete/", builder.delete_view, name="delete"),
    path(_WF + "try/", try_it.try_view, name="try"),
    path(
        "apps/<str:app_id>/knowledge-graph/",
        knowledge_graph.knowledge_graph_view,
        name="knowledge_graph",
    ),
    path(
        "apps/<str:app_id>/knowledge-graph/<str:relation_id>/delete/",
        knowledge_graph.relation_delete_view,
        name="relation_delete",
    ),
]
