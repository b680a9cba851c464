from django.urls import path

from . import views

app_name = "workflows"
_WF = "apps/<str:app_id>/workflows/<str:workflow_id>/"
urlpatterns = [
    path("apps/<str:app_id>/workflows/", views.builder_view, name="builder"),
    path(_WF, views.edit_view, name="edit"),
    path(_WF + "nodes/", views.node_add_view, name="node_add"),
    path(_WF + "nodes/<str:node_id>/remove/", views.node_remove_view, name="node_remove"),
    path(_WF + "save/", views.save_view, name="save"),
    path(_WF + "discard/", views.discard_view, name="discard"),
    path(_WF + "delete/", views.delete_view, name="delete"),
    path(_WF + "try/", views.try_view, name="try"),
    path("apps/<str:app_id>/knowledge-graph/", views.knowledge_graph_view, name="knowledge_graph"),
    path(
        "apps/<str:app_id>/knowledge-graph/<str:relation_id>/delete/",
        views.relation_delete_view,
        name="relation_delete",
    ),
]
