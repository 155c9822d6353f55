"""Tasks for the ``django_task`` processor's tests: ``django.tasks`` on Django 6, the
``django_tasks`` backport on 5.2. Each run appends what it was given to ``tasks.jsonl``."""

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

from recorder.record import append


@task(takes_context=True)
def record_file(context, pathname, kind=None, event_id=None):
    append(
        "tasks.jsonl",
        {
            "pathname": pathname,
            "kind": kind,
            "event_id": event_id,
            "queue_name": context.task_result.task.queue_name,
        },
    )


@task()
def record_event(event):
    append("tasks.jsonl", {"event": event})


def not_a_task(pathname):
    """A plain function: the checks refuse it as a ``task``."""
