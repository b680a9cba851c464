from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "collectors_module.datasets"
    label = "datasets"

    def ready(self) -> None:
        # Inside ready(): the selectors import models, which load once the registry is ready.
        from collectors_module.inputs.services import register_blob_users

        from .selectors import blob_in_use

        # A frozen version keeps the image blobs of inputs deleted after it was made.
        register_blob_users(blob_in_use)
