from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("capture", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="capture",
            name="input_pb",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="capture",
            name="output_pb",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="capture",
            name="input_data",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
