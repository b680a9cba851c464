from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "collectors_module.workflows"
    label = "workflows"

    def ready(self) -> None:
        # Inside ready(): these import models, which load only once the app registry is ready.
        from collectors_module.core import generations

        from .models import Workflow, WorkflowNode

        # Pre-queue workflows are compiled into the capture index of every serving process.
        generations.watch(Workflow)
        generations.watch(WorkflowNode)
