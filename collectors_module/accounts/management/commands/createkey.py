"""`manage.py createkey USER_ID [--create-user] [--app APP_ID] [--scopes ...] [--description ...]`

Prints only the new key's secret on stdout (so `KEY=$(manage.py createkey alice)` works);
everything else (a generated password, notes) goes to stderr.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from collectors_module.accounts import services
from collectors_module.accounts.models import Plan, User
from collectors_module.applications.models import App
from collectors_module.core.errors import ApiError


class Command(BaseCommand):
    help = "Create an API key (a PAT, or an app key with --app) and print its secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id", help="the user's public id (username)")
        parser.add_argument(
            "--create-user",
            action="store_true",
            help="create the user if missing (its generated password goes to stderr)",
        )
        parser.add_argument(
            "--plan",
            default=Plan.PROFESSIONAL,
            choices=Plan.values,
            help="plan of a user created with --create-user",
        )
        parser.add_argument(
            "--app",
            dest="app_id",
            default="",
            help="bind the key to this app of the user (an app key)",
        )
        parser.add_argument(
            "--scopes",
            nargs="+",
            default=["All"],
            metavar="SCOPE",
            help="Clarifai scope strings, e.g. Predict Inputs:Add (default: All)",
        )
        parser.add_argument("--description", default="created with manage.py createkey")

    def handle(self, *args, **options) -> None:
        user_id: str = options["user_id"]
        try:
            with transaction.atomic():
                user = User.objects.filter(username=user_id).first()
                if user is None:
                    if not options["create_user"]:
                        raise CommandError(
                            f"user '{user_id}' does not exist (add --create-user to create it)"
                        )
                    user, password = services.user_create(user_id=user_id, plan=options["plan"])
                    self.stderr.write(f"created user '{user_id}' with password: {password}")
                elif options["create_user"]:
                    self.stderr.write(f"user '{user_id}' already exists; not changed")
                app = None
                if options["app_id"]:
                    app = App.objects.filter(owner=user, public_id=options["app_id"]).first()
                    if app is None:
                        raise CommandError(
                            f"app '{options['app_id']}' of user '{user_id}' does not exist"
                        )
                scopes = [s for item in options["scopes"] for s in item.split(",")]
                created = services.key_create(
                    owner=user, scopes=scopes, description=options["description"], app=app
                )
        except ApiError as exc:
            raise CommandError(exc.details or exc.description) from exc
        kind = (
            f"app key for '{user_id}/{app.public_id}'"
            if app
            else f"personal access token of '{user_id}'"
        )
        self.stderr.write(
            f"{kind}, id {created.key.public_id}, scopes {', '.join(created.key.scopes)}"
        )
        self.stdout.write(created.secret)
