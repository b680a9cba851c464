from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("collectors", "0003_captures_move_to_the_capture_app"),
    ]

    operations = [
        migrations.AddField(
            model_name="collector",
            name="deactivated_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="collector",
            name="discarded_before",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
