from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "collectors_module.workflows"
    label = "workflows"
