from django.apps import AppConfig
from django.core import checks


class InotifierConfig(AppConfig):
    name = "inotifier"
    verbose_name = "inotifier"

    def ready(self):
        from inotifier.checks import check_settings

        checks.register(check_settings, "inotifier")
