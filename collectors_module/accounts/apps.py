from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "collectors_module.accounts"
    label = "accounts"
