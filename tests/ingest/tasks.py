try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

from ingest.models import Ingested


@task(queue_name="files")
def ingest(pathname, event_id):
    # Once per event, whatever the redeliveries: the event's id says which it is.
    Ingested.objects.get_or_create(event_id=event_id, defaults={"pathname": pathname})
