"""A Spidermon alert action for the end-to-end tests: it writes what a Slack or e-mail action would
send to a file (``TEST_ALERT_FILE``), so a test can see the alert fired and what it said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spidermon.core.actions import Action
from spidermon.exceptions import NotConfigured


class RecordAlert(Action):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    @classmethod
    def from_crawler_kwargs(cls, crawler: Any) -> dict[str, Any]:
        path = crawler.settings.get("TEST_ALERT_FILE")
        if not path:
            raise NotConfigured("TEST_ALERT_FILE is not set")
        return {"path": path}

    def run_action(self) -> None:
        failed = [result.item.name for result in self.result.monitors_failed_results]
        Path(self.path).write_text(json.dumps({"spider": self.data.spider.name, "failed": failed}))
