import os

from inotifier.event_processors import ProcessEvent

from ingest.models import Upload


class RecordUpload(ProcessEvent):
    def process_IN_CLOSE_WRITE(self, event):
        Upload.objects.create(
            pathname=event.pathname, event_id=event.id, size=os.stat(event.pathname).st_size
        )
