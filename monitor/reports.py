"""Pure report builders: a snapshot of the monitor's state in, Excel (openpyxl) or PDF (reportlab) bytes out.

No Kafka, no Dash: ``collect_report`` copies what the state holds into a ``ReportData``; the
builders only format it. Cards appear as shortened tokens, as in the alert queue; the monitor
never holds card numbers, and the reports show nothing else about a card.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from monitor.aggregation import DECISIONS, AlertFilter, Headline, MinuteStats, MonitorState, Verdict
from monitor.formatting import format_amounts, format_time, shorten_token
from monitor.timerange import EVERYTHING, RANGE_LABELS, TimeRange
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES

REPORT_TITLE = "Fraud Detection Report"
SHEET_SUMMARY = "Summary"
SHEET_RATES = "Rates by type"
SHEET_ALERTS = "Alerts"
PDF_TOP_ALERTS = 20
_MINUTE = timedelta(minutes=1)

ALERT_REPORT_COLUMNS = (
    "Transaction",
    "Event time (UTC)",
    "Type",
    "Decision",
    "Score",
    "Amount",
    "Currency",
    "Card",
    "Reasons",
    "Verdict",
    "Verdict fraud type",
    "Analyst",
    "Verdict at (UTC)",
)


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report shows, copied from the state at ``generated_at``."""

    generated_at: datetime
    generated_by: str
    headline: Headline
    minutes: Sequence[MinuteStats]
    """One entry per minute from the first to the last minute with decisions (gaps filled with 0)."""
    alerts: Sequence[Mapping[str, Any]]
    """The alert queue, newest first."""
    verdicts: Mapping[str, Verdict]
    range_text: str = RANGE_LABELS["all"]
    """The time range chosen on the page ('Last 1 h', or custom bounds)."""

    @property
    def period(self) -> tuple[datetime, datetime] | None:
        """[start of the first minute, end of the last minute) of the history, or None when empty."""
        if not self.minutes:
            return None
        return self.minutes[0].minute, self.minutes[-1].minute + _MINUTE

    @property
    def period_text(self) -> str:
        period = self.period
        if period is None:
            return "no decisions yet"
        start, end = period
        return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"

    def verdict_counts(self) -> dict[str, int]:
        """Alerts in the queue confirmed as fraud, marked legitimate, and awaiting a verdict."""
        counts = {"fraud": 0, "legitimate": 0, "pending": 0}
        for alert in self.alerts:
            verdict = self.verdicts.get(str(alert.get("transaction_id", "")))
            counts[verdict.outcome if verdict is not None else "pending"] += 1
        return counts


def fill_minutes(stats: Sequence[MinuteStats]) -> list[MinuteStats]:
    """``stats`` (oldest first) with a zero entry for every minute without decisions in between."""
    if not stats:
        return []
    by_minute = {s.minute: s for s in stats}
    filled: list[MinuteStats] = []
    minute, last = stats[0].minute, stats[-1].minute
    while minute <= last:
        filled.append(
            by_minute.get(minute)
            or MinuteStats(
                minute=minute,
                total=0,
                outcomes=dict.fromkeys(DECISIONS, 0),
                flagged_by_type=dict.fromkeys(FRAUD_TYPES, 0),
                blocked_amount={},
            )
        )
        minute += _MINUTE
    return filled


def collect_report(
    state: MonitorState,
    *,
    generated_by: str,
    now: datetime | None = None,
    within: TimeRange = EVERYTHING,
    range_text: str = RANGE_LABELS["all"],
) -> ReportData:
    """A consistent-enough snapshot of ``state`` for one report, limited to the range ``within``."""
    return ReportData(
        generated_at=(now or datetime.now(UTC)).astimezone(UTC),
        generated_by=generated_by,
        headline=state.decisions.headline(within),
        minutes=fill_minutes(state.decisions.minutes(within=within)),
        alerts=state.alerts.query(AlertFilter(within=within)).alerts,
        verdicts=state.verdicts.snapshot(),
        range_text=range_text,
    )


def report_filename(data: ReportData, extension: str) -> str:
    """'fraud-report-20261128-091500.xlsx'."""
    return f"fraud-report-{data.generated_at:%Y%m%d-%H%M%S}.{extension}"


# --- rows shared by both formats -----------------------------------------------------------------
def _naive(ts: datetime) -> datetime:
    """Excel has no time zones: UTC wall time (the headers say UTC)."""
    return ts.astimezone(UTC).replace(tzinfo=None)


def summary_rows(data: ReportData) -> list[tuple[str, Any]]:
    """(figure, value) rows of the summary; rates are fractions (0..1), times naive UTC."""
    h = data.headline
    period = data.period
    rows: list[tuple[str, Any]] = [
        ("Report", REPORT_TITLE),
        ("Generated at (UTC)", _naive(data.generated_at)),
        ("Generated by", data.generated_by),
        ("Period", data.period_text),
        ("Time range", data.range_text),
        ("Period start (UTC)", _naive(period[0]) if period else ""),
        ("Period end (UTC)", _naive(period[1]) if period else ""),
        ("Transactions", h.total),
    ]
    rows += [(f"Decisions: {d}", h.outcomes[d]) for d in DECISIONS]
    rows += [("Flagged (review + block)", h.flagged), ("Alert rate", h.alert_rate)]
    for code in FRAUD_TYPES:
        name = FRAUD_TYPE_NAMES[code]
        flagged = h.flagged_by_type[code]
        rows.append((f"Flagged: {name}", flagged))
        rows.append((f"Fraud rate: {name}", flagged / h.total if h.total else 0.0))
    counts = data.verdict_counts()
    rows += [
        ("Blocked amount", format_amounts(h.blocked_amount)),
        ("Alerts in the queue", len(data.alerts)),
        ("Alerts confirmed as fraud", counts["fraud"]),
        ("Alerts marked legitimate", counts["legitimate"]),
        ("Alerts awaiting a verdict", counts["pending"]),
    ]
    return rows


def rate_header() -> list[str]:
    return (
        ["Minute (UTC)", "Transactions"]
        + [f"Flagged: {FRAUD_TYPE_NAMES[c]}" for c in FRAUD_TYPES]
        + [f"Rate: {FRAUD_TYPE_NAMES[c]}" for c in FRAUD_TYPES]
    )


def rate_rows(data: ReportData) -> list[list[Any]]:
    """Per minute: start (naive UTC), transactions, flagged per type, rate per type (0..1)."""
    return [
        [_naive(s.minute), s.total]
        + [s.flagged_by_type[c] for c in FRAUD_TYPES]
        + [s.fraud_rate(c) for c in FRAUD_TYPES]
        for s in data.minutes
    ]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def alert_row(alert: Mapping[str, Any], verdict: Verdict | None) -> list[Any]:
    """One alert in ``ALERT_REPORT_COLUMNS`` order (card token shortened)."""
    fraud_type = alert.get("fraud_type")
    reasons = alert.get("reasons")
    return [
        str(alert.get("transaction_id", "")),
        format_time(alert.get("event_time")),
        FRAUD_TYPE_NAMES.get(fraud_type, "") if isinstance(fraud_type, str) else "",
        str(alert.get("decision", "")),
        _number(alert.get("score")),
        _number(alert.get("amount")),
        str(alert.get("currency", "")),
        shorten_token(alert.get("card_token")),
        "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else "",
        verdict.outcome if verdict else "",
        FRAUD_TYPE_NAMES.get(verdict.fraud_type or "", "") if verdict else "",
        verdict.analyst if verdict else "",
        verdict.labelled_at.strftime("%Y-%m-%d %H:%M:%S") if verdict else "",
    ]


def alert_rows(data: ReportData) -> list[list[Any]]:
    """The alert queue (newest first) with verdicts."""
    return [alert_row(a, data.verdicts.get(str(a.get("transaction_id", "")))) for a in data.alerts]


def top_alerts(data: ReportData, limit: int = PDF_TOP_ALERTS) -> list[Mapping[str, Any]]:
    """The ``limit`` highest-scoring alerts, newest first among equal scores."""
    ranked = sorted(
        enumerate(data.alerts), key=lambda item: (-(_number(item[1].get("score")) or 0.0), item[0])
    )
    return [alert for _, alert in ranked[:limit]]


# --- Excel -------------------------------------------------------------------------------------
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
    """The report as an .xlsx workbook: sheets Summary, Rates by type, Alerts."""
    wb = Workbook()
    summary = wb.active
    summary.title = SHEET_SUMMARY
    _header(summary, ["Figure", "Value"])
    for row, (name, value) in enumerate(summary_rows(data), start=2):
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

    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# --- PDF -----------------------------------------------------------------------------------------
CHART_WIDTH = 25 * cm
CHART_HEIGHT = 5 * cm


def rate_chart(data: ReportData, fraud_type: str) -> Drawing:
    """Line chart (reportlab graphics) of one type's fraud rate per minute, in percent."""
    drawing = Drawing(CHART_WIDTH, CHART_HEIGHT)
    if not data.minutes:
        drawing.add(
            String(CHART_WIDTH / 2, CHART_HEIGHT / 2, "No decisions in the period.", textAnchor="middle")
        )
        return drawing
    points = [(s.minute.timestamp() / 60.0, 100.0 * s.fraud_rate(fraud_type)) for s in data.minutes]
    plot = LinePlot()
    plot.x, plot.y = 1.6 * cm, 0.9 * cm
    plot.width, plot.height = CHART_WIDTH - 2.2 * cm, CHART_HEIGHT - 1.3 * cm
    plot.data = [points]
    plot.lines[0].strokeColor = colors.HexColor("#c0392b")
    plot.lines[0].strokeWidth = 1.5
    if len(points) <= 60:
        plot.lines[0].symbol = makeMarker("FilledCircle", size=3)
    first, last = points[0][0], points[-1][0]
    if first == last:
        first, last = first - 1, last + 1
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = first, last
    span_days = (last - first) / (60 * 24)
    fmt = "%m-%d %H:%M" if span_days >= 1 else "%H:%M"
    plot.xValueAxis.labelTextFormat = lambda v: datetime.fromtimestamp(v * 60, UTC).strftime(fmt)
    plot.xValueAxis.labels.fontSize = 7
    top = max(p[1] for p in points)
    plot.yValueAxis.valueMin = 0
    plot.yValueAxis.valueMax = top * 1.15 if top > 0 else 1.0
    plot.yValueAxis.labelTextFormat = lambda v: f"{v:.1f}%"
    plot.yValueAxis.labels.fontSize = 7
    plot.yValueAxis.visibleGrid = True
    plot.yValueAxis.gridStrokeColor = colors.HexColor("#e5e5e5")
    drawing.add(plot)
    return drawing


def _table(rows: list[list[Any]], widths: list[float], *, header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [
        ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
    ]
    if header:
        style += [
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")),
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ]
    table.setStyle(TableStyle(style))
    return table


def _pdf_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def build_pdf(data: ReportData) -> bytes:
    """The report as a PDF: title, period, headline figures, one chart per type, top alerts."""
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.2 * cm,
        bottomMargin=1.2 * cm,
        title=REPORT_TITLE,
        author=f"Fraud monitor ({data.generated_by})",
    )
    story: list[Any] = [
        Paragraph(REPORT_TITLE, styles["Title"]),
        Paragraph(escape(f"Period: {data.period_text}"), styles["Heading3"]),
        Paragraph(escape(f"Time range: {data.range_text}"), styles["BodyText"]),
        Paragraph(
            escape(f"Generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC by {data.generated_by}"),
            styles["BodyText"],
        ),
        Spacer(1, 0.3 * cm),
    ]
    figures = [
        [name, f"{value:.2%}" if "rate" in name.lower() and isinstance(value, float) else _pdf_value(value)]
        for name, value in summary_rows(data)
        if name
        not in (
            "Report",
            "Generated at (UTC)",
            "Generated by",
            "Period start (UTC)",
            "Period end (UTC)",
            "Time range",
        )
    ]
    half = (len(figures) + 1) // 2
    left, right = figures[:half], figures[half:] + [["", ""]] * (2 * half - len(figures))
    story.append(
        KeepTogether(
            [
                Paragraph("Headline figures", styles["Heading2"]),
                _table(
                    [a + b for a, b in zip(left, right, strict=True)],
                    [6 * cm, 6.5 * cm, 6 * cm, 6.5 * cm],
                    header=False,
                ),
            ]
        )
    )
    for code in FRAUD_TYPES:
        story.append(
            KeepTogether(
                [
                    Paragraph(escape(f"{FRAUD_TYPE_NAMES[code]}: fraud rate per minute"), styles["Heading2"]),
                    rate_chart(data, code),
                ]
            )
        )
    story.append(Paragraph(f"Top alerts (highest score, at most {PDF_TOP_ALERTS})", styles["Heading2"]))
    columns = [
        "Transaction",
        "Event time (UTC)",
        "Type",
        "Decision",
        "Score",
        "Amount",
        "Card",
        "Verdict",
        "Reasons",
    ]
    rows: list[list[Any]] = [columns]
    for alert in top_alerts(data):
        verdict = data.verdicts.get(str(alert.get("transaction_id", "")))
        row = alert_row(alert, verdict)
        score, amount = row[4], row[5]
        verdict_text = f"{verdict.outcome} ({verdict.analyst})" if verdict else "pending"
        rows.append(
            [
                Paragraph(escape(row[0]), small),
                row[1],
                Paragraph(escape(row[2]), small),
                row[3],
                f"{score:.2f}" if score is not None else "",
                f"{amount:,.2f} {row[6]}" if amount is not None else "",
                row[7],
                Paragraph(escape(verdict_text), small),
                Paragraph(escape(row[8]), small),
            ]
        )
    if len(rows) == 1:
        rows.append(["No alerts.", "", "", "", "", "", "", "", ""])
    widths = [c * cm for c in (2.8, 2.9, 2.9, 1.4, 1.1, 2.3, 2.2, 2.6, 8.5)]
    story.append(_table(rows, widths))
    doc.build(story)
    return buffer.getvalue()
