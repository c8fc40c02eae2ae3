"""The HTML report of a run: tables and figures of its results in one self-contained page.

``write_report(out_dir)`` reads what a run left in its output directory
(:mod:`nidecode.report.inputs`), draws the figures (:mod:`nidecode.report.figures`)
and fills the page (:mod:`nidecode.report.html`).
"""

from nidecode.report.build import write_report

__all__ = ["write_report"]
