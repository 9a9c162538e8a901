"""The report as an Excel workbook (openpyxl): sheets Summary, Rates by type, Alerts (highest score
first; the Summary says so, so that the Alerts sheet's first row stays its column header) and Audit
(the audit trail's changes in the range, newest first)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from monitor.reports.data import (
    ALERT_REPORT_COLUMNS,
    ALERTS_ORDER_TEXT,
    AUDIT_REPORT_COLUMNS,
    ReportData,
    alert_rows,
    audit_rows,
    rate_header,
    rate_rows,
    summary_rows,
)
from pipeline.config import FRAUD_TYPES

SHEET_SUMMARY = "Summary"
SHEET_RATES = "Rates by type"
SHEET_ALERTS = "Alerts"
SHEET_AUDIT = "Audit"
ALERTS_ORDER_FIGURE = "Alerts sheet order"
_BOLD = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE3EA")
_PERCENT = "0.00%"
_DATETIME = "yyyy-mm-dd hh:mm:ss"


def _put(ws: Any, row: int, column: int, value: Any) -> Any:
    cell = ws.cell(row=row, column=column, value=value)
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"  # text from messages is never a formula
    elif isinstance(value, datetime):
        cell.number_format = _DATETIME
    return cell


def _header(ws: Any, names: Sequence[str]) -> None:
    for column, name in enumerate(names, start=1):
        cell = _put(ws, 1, column, name)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL
    ws.freeze_panes = "A2"


def _widths(ws: Any, widths: Sequence[int]) -> None:
    for column, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(column)].width = width


def build_excel(data: ReportData) -> bytes:
    """The report as an .xlsx workbook: sheets Summary, Rates by type, Alerts (highest score first), Audit."""
    wb = Workbook()
    summary = wb.active
    summary.title = SHEET_SUMMARY
    _header(summary, ["Figure", "Value"])
    rows = [*summary_rows(data), (ALERTS_ORDER_FIGURE, ALERTS_ORDER_TEXT.capitalize())]
    for row, (name, value) in enumerate(rows, start=2):
        _put(summary, row, 1, name)
        cell = _put(summary, row, 2, value)
        if "rate" in name.lower() and isinstance(value, float):
            cell.number_format = _PERCENT
    _widths(summary, [34, 44])

    rates = wb.create_sheet(SHEET_RATES)
    header = rate_header()
    _header(rates, header)
    first_rate = 3 + len(FRAUD_TYPES)
    for row, values in enumerate(rate_rows(data), start=2):
        for column, value in enumerate(values, start=1):
            cell = _put(rates, row, column, value)
            if column >= first_rate:
                cell.number_format = _PERCENT
    _widths(rates, [20, 13] + [30] * (2 * len(FRAUD_TYPES)))

    alerts = wb.create_sheet(SHEET_ALERTS)
    _header(alerts, ALERT_REPORT_COLUMNS)
    for row, values in enumerate(alert_rows(data), start=2):
        for column, value in enumerate(values, start=1):
            cell = _put(alerts, row, column, value)
            if column == 5 and value is not None:
                cell.number_format = "0.00"
            elif column == 6 and value is not None:
                cell.number_format = "#,##0.00"
    _widths(alerts, [18, 20, 26, 9, 7, 12, 9, 14, 70, 11, 26, 16, 20])
    alerts.auto_filter.ref = alerts.dimensions

    audit = wb.create_sheet(SHEET_AUDIT)
    _header(audit, AUDIT_REPORT_COLUMNS)
    for row, values in enumerate(audit_rows(data), start=2):
        for column, value in enumerate(values, start=1):
            _put(audit, row, column, value)
    _widths(audit, [20, 14, 12, 34, 50, 50, 34])
    audit.auto_filter.ref = audit.dimensions

    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
