"""The HTML report of a run: tables and figures of its results in one self-contained page.

``write_report(out_dir)`` reads what a run left in its output directory
(:mod:`engine.report.inputs`), draws the figures (:mod:`engine.report.figures`)
and fills the page (:mod:`engine.report.html`).
"""

from engine.report.build import write_report

__all__ = ["write_report"]
