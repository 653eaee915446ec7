"""Pictures and pages to look at: ``overlay`` draws photos with boxes and labels (the demo's sheet
and the report's examples), ``page`` writes ``pseudolabel report``'s static HTML page."""
from .page import build_report

__all__ = ["build_report"]
