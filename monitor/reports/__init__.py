"""Pure report builders: a snapshot of the monitor's state in, Excel or PDF bytes out.

No Kafka, no Dash: ``data.collect_report`` copies what the state holds into a ``ReportData`` and
gives the rows both formats show; ``excel.build_excel`` (openpyxl) and ``pdf.build_pdf``
(reportlab) only lay them out. Cards appear as shortened tokens, as in the alert queue; the
monitor never holds card numbers, and the reports show nothing else about a card.
"""
