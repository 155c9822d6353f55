import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Creates the superuser 'admin' when there is no superuser yet, with the password in "
        "$INOTIFIER_EXAMPLE_ADMIN_PASSWORD or a random one, and prints how to log in."
    )

    def handle(self, *args, **options):
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write(
                "Log in with the existing superuser (password forgotten? "
                "`.venv/bin/python example/manage.py changepassword admin`)."
            )
            return
        password = os.environ.get("INOTIFIER_EXAMPLE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.create_superuser("admin", email="", password=password)
        self.stdout.write(f"Created the superuser: username admin, password {password}")
