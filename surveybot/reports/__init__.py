"""Reports read everything and write nothing.

status        a wave's status now (``wave status``)
dispositions  each invited recipient's final disposition (AAPOR) and the response rates
method        the method table and paragraph of the field report
formats       the field report as Markdown, HTML, JSON or CSV (``surveybot report``)
"""

from __future__ import annotations

from surveybot.reports.status import wave_status

__all__ = ["wave_status"]
