"""Render an `InvoiceDocument` to PDF with Typst (engine chosen by measurement, see
benchmarks/README.md) and decide where the file lives."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import typst

from billing_jobs.invoicing.documents import einvoice, i18n
from billing_jobs.invoicing.documents.model import DocumentKind, InvoiceDocument, Party
from billing_jobs.invoicing.documents.templates import FONT_DIR, ResolvedTemplate, resolve_template
from billing_jobs.invoicing.documents.words import amount_in_words


class RenderError(RuntimeError):
    """Typst could not compile the template with this document's data."""


# One compiler per template file: building it loads and indexes the fonts, which is most of
# the cost of a first render. Typst's compiler is not documented as thread-safe, so each is
# used under its own lock.
_COMPILERS: dict[Path, tuple[typst.Compiler, threading.Lock]] = {}
_COMPILERS_LOCK = threading.Lock()


def _compiler(path: Path) -> tuple[typst.Compiler, threading.Lock]:
    with _COMPILERS_LOCK:
        if path not in _COMPILERS:
            compiler = typst.Compiler(
                str(path),
                root=str(path.parent),
                font_paths=[str(FONT_DIR)],
                # Output must not depend on whatever fonts the host has installed.
                ignore_system_fonts=True,
            )
            _COMPILERS[path] = (compiler, threading.Lock())
        return _COMPILERS[path]


def _party_view(p: Party, lab: dict[str, str]) -> dict[str, Any]:
    return {
        "name": p.name,
        "address": list(p.address),
        "state_name": p.state.name,
        "state_code": p.state.code,
        "gstin": p.gstin or lab["unregistered"],
    }


def _tax_columns(doc: InvoiceDocument) -> tuple[bool, bool]:
    """Intra-state supplies show CGST + SGST, inter-state IGST (a document with both, which
    should not happen, still shows every tax it carries)."""
    show_split = bool(doc.totals.cgst_minor or doc.totals.sgst_minor or doc.intra_state)
    show_igst = bool(doc.totals.igst_minor or not doc.intra_state)
    return show_split, show_igst


def _item_table(
    doc: InvoiceDocument, lab: dict[str, str], amt: Any, loc: str
) -> tuple[dict[str, Any], list[list[str]]]:
    """Column layout (two header rows, widths in pt, 0 = the rest) and the formatted rows.
    A document with discounts shows each line's value, its discount and the taxable value
    after it (CGST Rule 46) instead of the unit price, in narrower columns."""
    show_split, show_igst = _tax_columns(doc)
    discounted = bool(doc.discount_minor)
    if discounted:
        plain = ("sl", "description", "sac_hsn", "qty", "value", "discount", "taxable_value")
        widths, tax_w, total_w = [14, 0, 38, 22, 54, 50, 56], (22, 48), 56
    else:
        plain = ("sl", "description", "sac_hsn", "qty", "rate", "taxable_value")
        widths, tax_w, total_w = [16, 0, 44, 28, 56, 62], (28, 54), 64
    # Two header rows: plain columns span both; each tax spans its rate and amount columns.
    head1: list[dict[str, Any]] = [{"t": lab[k], "rs": 2, "cs": 1} for k in plain]
    head2: list[str] = []
    align = ["c", "l", "c", *("r" * (len(plain) - 3))]
    taxes = (["cgst", "sgst"] if show_split else []) + (["igst"] if show_igst else [])
    for tax in taxes:
        head1.append({"t": lab[tax], "rs": 1, "cs": 2})
        head2 += ["%", lab["amount"]]
        widths += list(tax_w)
        align += ["r", "r"]
    head1.append({"t": lab["amount"], "rs": 2, "cs": 1})
    widths.append(total_w)
    align.append("r")
    rows = []
    for i, ln in enumerate(doc.lines, start=1):
        row = [str(i), ln.description, ln.sac_hsn, i18n.format_quantity(ln.quantity, loc)]
        if discounted:
            row += [amt(ln.value_minor), amt(-ln.discount_minor) if ln.discount_minor else "–"]
        else:
            row.append(amt(ln.unit_price_minor))
        row.append(amt(ln.taxable_value_minor))
        if show_split:
            row += [
                i18n.format_rate(ln.cgst_rate),
                amt(ln.cgst_minor),
                i18n.format_rate(ln.sgst_rate),
                amt(ln.sgst_minor),
            ]
        if show_igst:
            row += [i18n.format_rate(ln.igst_rate), amt(ln.igst_minor)]
        row.append(amt(ln.taxable_value_minor + ln.tax_minor))
        rows.append(row)
    columns = {"head1": head1, "head2": head2, "widths": widths, "align": align,
               "plain": len(plain)}  # fmt: skip
    return columns, rows


def build_view(
    doc: InvoiceDocument, *, lang: str = "en", template: ResolvedTemplate | None = None
) -> dict[str, Any]:
    """Everything the template prints, already formatted for the language (testable without
    a PDF)."""
    lab = i18n.labels(lang)
    loc = i18n.LOCALES[lang]
    tpl = template or resolve_template(brand=doc.brand)
    cur = doc.currency

    def amt(minor: int) -> str:
        return i18n.format_amount(minor, cur, loc)

    credit = doc.kind is DocumentKind.CREDIT_NOTE
    meta = [
        [lab["credit_note_number"] if credit else lab["number"], doc.number],
        [lab["date"], i18n.format_day(doc.issue_date, loc)],
    ]
    if doc.due_date is not None:
        meta.append([lab["due_date"], i18n.format_day(doc.due_date, loc)])
    if credit and doc.original_invoice is not None:
        meta.append([lab["original_invoice"], doc.original_invoice.number])
        meta.append([lab["original_date"], i18n.format_day(doc.original_invoice.issue_date, loc)])
    pos = f"{doc.place_of_supply.name} ({doc.place_of_supply.code})"
    meta.append([lab["place_of_supply"], pos])
    meta.append([lab["reverse_charge"], lab["yes"] if doc.reverse_charge else lab["no"]])
    meta.append([lab["financial_year"], doc.financial_year])

    columns, rows = _item_table(doc, lab, amt, loc)
    t = doc.totals
    show_split, show_igst = _tax_columns(doc)
    totals: list[list[Any]] = []
    if doc.discount_minor:
        # How the taxable value was reached (Rule 46): value, less discount, taxable value.
        value = sum(ln.value_minor for ln in doc.lines)
        totals.append([lab["value_before_discount"], amt(value), False])
        totals.append([lab["discount"], amt(-doc.discount_minor), False])
    totals.append([lab["total_taxable"], amt(t.taxable_minor), False])
    if show_split:
        totals.append([lab["cgst"], amt(t.cgst_minor), False])
        totals.append([lab["sgst"], amt(t.sgst_minor), False])
    if show_igst:
        totals.append([lab["igst"], amt(t.igst_minor), False])
    totals.append([lab["round_off"], amt(t.round_off_minor), False])
    totals.append([f"{lab['total']} ({cur})", i18n.format_money(t.total_minor, cur, loc), True])
    if credit and doc.reason:
        meta.append([lab["reason"], lab.get(f"reason_{doc.reason}", doc.reason)])

    # Marathi has no amount-in-words implementation yet; Indian invoices accept English.
    words_lang = "hi" if lang == "hi" else "en"
    irn = einvoice.irn_for(doc) if doc.einvoice is not None else None
    qr = einvoice.qr_svg(einvoice.qr_payload(doc)) if doc.einvoice is not None else None
    brand = tpl.brand
    return {
        "lang": lang,
        "title": lab["credit_note"] if credit else lab["tax_invoice"],
        "number": doc.number,
        "labels": lab,
        "brand": {
            "primary": brand.primary_colour,
            "accent": brand.accent_colour,
            "footer": brand.footer_for(lang),
            "logo": brand.logo_svg,
        },
        "supplier": _party_view(doc.supplier, lab),
        "recipient": _party_view(doc.recipient, lab),
        "place_of_supply": pos,
        "meta": meta,
        "columns": columns,
        "rows": rows,
        "totals": totals,
        "words": amount_in_words(t.total_minor, cur, words_lang),
        "notes": list(doc.notes),
        # Typst does not break a 64-character hex run, so the IRN is printed in two halves.
        "irn": [irn[:32], irn[32:]] if irn else None,
        "ack": doc.einvoice.ack_number if doc.einvoice is not None else None,
        "qr": qr,
    }


def render_pdf(
    doc: InvoiceDocument,
    *,
    lang: str = "en",
    brand: str | None = None,
    template_version: int | None = None,
) -> bytes:
    """Render the document to PDF bytes. `brand` overrides `doc.brand`; the template version
    defaults to the brand's pinned version, else the latest. Output is deterministic: the PDF
    timestamp is the issue date, not the clock."""
    tpl = resolve_template("invoice", brand=brand or doc.brand, version=template_version)
    view = build_view(doc, lang=lang, template=tpl)
    compiler, lock = _compiler(tpl.path)
    stamp = datetime.combine(doc.issue_date, time(0, 0), tzinfo=UTC)
    try:
        with lock:
            return compiler.compile(
                format="pdf",
                sys_inputs={"data": json.dumps(view, ensure_ascii=False)},
                timestamp=int(stamp.timestamp()),
            )
    except typst.TypstError as exc:
        raise RenderError(
            f"template {tpl.path.name} (brand {tpl.brand.name}) failed for {doc.number}: {exc}"
        ) from exc
