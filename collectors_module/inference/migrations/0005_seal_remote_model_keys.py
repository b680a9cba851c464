"""Existing remote model versions: seal their API keys at rest and drop `api_key_env` (a tenant
may no longer name an operator environment variable; operator credentials are bound to
endpoints in REMOTE_MODEL_CREDENTIAL_ENDPOINTS instead)."""

from django.db import migrations

from collectors_module.core.sealed import is_sealed, seal


def forwards(apps, schema_editor):
    ModelVersion = apps.get_model("inference", "ModelVersion")
    for mv in ModelVersion.objects.filter(runner__startswith="remote:").iterator():
        config = dict(mv.runner_config or {})
        changed = config.pop("api_key_env", None) is not None
        key = config.pop("api_key", None)
        if key is not None:
            changed = True
            if key:
                config["api_key_sealed"] = key if is_sealed(key) else seal(str(key))
        if changed:
            mv.runner_config = config
            mv.save(update_fields=["runner_config"])


class Migration(migrations.Migration):
    dependencies = [("inference", "0004_model_capture_all_callers")]

    # Not reversible: a sealed key is not written back in clear.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
