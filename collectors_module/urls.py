from django.urls import include, path, re_path

from collectors_module.api.rest import transport

urlpatterns = [
    *transport.urlpatterns(),
    re_path(r"^v2/", transport.not_found_view),
    path("api/", include("collectors_module.api.urls")),
    path("", include("collectors_module.ops.urls")),
    path("accounts/", include("collectors_module.accounts.urls")),
    path("", include("collectors_module.applications.urls")),
    path("", include("collectors_module.inputs.urls")),
    path("", include("collectors_module.inference.urls")),
    path("", include("collectors_module.workflows.urls")),
    path("", include("collectors_module.collectors.urls")),
    path("", include("collectors_module.modules.urls")),
    path("", include("collectors_module.datasets.urls")),
]
