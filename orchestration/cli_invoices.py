"""Operator commands for tax documents: `paysight invoices {list,show,preview,void,pdf,run}`
and `paysight credit-notes {list,show,pdf}`. Money prints as money; `--json` in minor units."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestration.cli_args import parse_count, parse_instant
from orchestration.cli_billing import (
    QUANTITY_MAX,
    AtOption,
    CustomerOption,
    IdArg,
    JsonOption,
    LimitOption,
    SubscriptionOption,
    run_domain,
)
from orchestration.cli_output import emit, money, table
from orchestration.lib.env import load_settings

invoices_app = typer.Typer(
    help="Invoices: list, show, preview, void, pdf, run.", no_args_is_help=True
)
notes_app = typer.Typer(help="Credit notes: list, show, pdf.", no_args_is_help=True)
LANGS = ("en", "hi", "mr")
LangOption = Annotated[str, typer.Option(help="Document language: en, hi or mr.")]
OutputOption = Annotated[str | None, typer.Option("--output", "-o", help="Where to write the PDF.")]


def _utc(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"


def _lines_table(lines: list[dict[str, Any]], cur: str) -> None:
    table(
        [(i, ln["description"], ln["sac"], ln.get("quantity", ""),
          money(ln["amount_minor"], cur), money(ln["discount_minor"], cur),
          money(ln["taxable_minor"], cur), f"{ln['tax_rate_bp'] / 100:g}%",
          money(ln["cgst_minor"] + ln["sgst_minor"] + ln["igst_minor"], cur))
         for i, ln in enumerate(lines, start=1)],
        ["#", "description", "SAC", "qty", "value", "discount", "taxable", "GST", "tax"],
        right=(0, 3, 4, 5, 6, 8),
    )  # fmt: skip


def _totals(doc: dict[str, Any], cur: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in doc and (doc[key] or key in ("taxable_minor", "total_minor")):
            label = key.removesuffix("_minor").replace("_", " ")
            typer.echo(f"  {label:18} {money(doc[key], cur):>16}")


def _render_invoice(inv: dict[str, Any]) -> None:
    cur = inv["currency"]
    typer.echo(f"invoice {inv['number'] or '(draft)'} (id {inv['id']}) · {inv['kind']} · "
               f"{inv['status']} · customer {inv['customer_id']}"
               + (f" · subscription {inv['subscription_id']}" if inv["subscription_id"] else ""))  # fmt: skip
    typer.echo(f"  issued {_utc(inv['issued_at'])} · place of supply {inv['place_of_supply']} ·"
               f" {inv['tax_regime']}")  # fmt: skip
    _lines_table(inv["lines"], cur)
    _totals(inv, cur, ("subtotal_minor", "discount_minor", "taxable_minor", "cgst_minor",
                       "sgst_minor", "igst_minor", "total_minor", "credit_applied_minor",
                       "amount_due_minor", "amount_paid_minor", "amount_credited_minor"))  # fmt: skip
    if inv.get("credit_notes"):
        typer.echo(f"  credit notes       {', '.join(inv['credit_notes'])}")


def _render_note(note: dict[str, Any]) -> None:
    cur = note["currency"]
    typer.echo(f"credit note {note['number']} (id {note['id']}) · {note['reason']} · against "
               f"invoice {note.get('invoice_number') or note['invoice_id']} · customer "
               f"{note['customer_id']}")  # fmt: skip
    typer.echo(f"  issued {_utc(note['issued_at'])} · to {note['destination'].replace('_', ' ')}")
    _lines_table(note["lines"], cur)
    _totals(note, cur, ("taxable_minor", "cgst_minor", "sgst_minor", "igst_minor",
                        "total_minor"))  # fmt: skip


def _invoice_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        typer.echo("no invoices")
        return
    table(
        [(r["id"], r["number"] or "(draft)", r["kind"], r["status"], r["issued_at"][:10],
          r["customer_id"], r["subscription_id"] or "–", money(r["total_minor"], r["currency"]),
          money(r["amount_due_minor"] - r["amount_paid_minor"], r["currency"])) for r in rows],
        ["id", "number", "kind", "status", "issued", "customer", "subscription", "total", "due"],
        right=(0, 5, 6, 7, 8),
    )  # fmt: skip


@invoices_app.command("list")
def invoices_list(
    customer_id: CustomerOption = None,
    subscription_id: SubscriptionOption = None,
    status: Annotated[
        str | None, typer.Option(help="draft, open, paid, void, uncollectible.")
    ] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Invoices (oldest first) with what is still due."""
    from billing_jobs.invoicing.invoices import list_invoices

    limit = parse_count(limit)
    rows = run_domain(
        lambda e: list_invoices(
            e, customer_id=customer_id, subscription_id=subscription_id, status=status,
            limit=limit,
        )
    )  # fmt: skip
    emit(rows, as_json, render=_invoice_rows)


@invoices_app.command("show")
def invoices_show(
    invoice: Annotated[str, typer.Argument(help="Invoice id or number (INV/2627/000001).")],
    as_json: JsonOption = False,
) -> None:
    """Show an invoice with its lines (value, discount, taxable value, GST) and totals."""
    from billing_jobs.invoicing.invoices import find_invoice_id, get_invoice

    out = run_domain(lambda e: get_invoice(e, find_invoice_id(e, invoice)))
    emit(out, as_json, render=_render_invoice)


@invoices_app.command("preview")
def invoices_preview(
    subscription_id: IdArg,
    plan: Annotated[str | None, typer.Option(help="Hypothetical new plan.")] = None,
    quantity: Annotated[
        int | None, typer.Option(min=1, max=QUANTITY_MAX, help="Hypothetical new quantity.")
    ] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """The upcoming invoice, with prorations for a hypothetical change at --at (nothing is saved)."""
    from billing_jobs.subscriptions.preview import preview_invoice

    moment = parse_instant(at)
    change = {k: v for k, v in {"plan": plan, "quantity": quantity}.items() if v is not None}
    out = run_domain(
        lambda e: preview_invoice(e, subscription_id, at=moment, change=change or None)
    )
    emit(out, as_json, "upcoming invoice (preview)")


@invoices_app.command("void")
def invoices_void(
    invoice: Annotated[str, typer.Argument(help="Invoice id or number.")],
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Void an open invoice (its number stays used)."""
    from billing_jobs.invoicing.invoices import find_invoice_id, void_invoice

    moment = parse_instant(at)
    out = run_domain(lambda e: void_invoice(e, find_invoice_id(e, invoice), at=moment))
    emit(out, as_json, "invoice voided", _render_invoice)


def _write_pdf(doc: Any, lang: str, output: str | None) -> Path:
    from billing_jobs.invoicing.documents.render import render_pdf
    from billing_jobs.invoicing.documents.storage import document_path, store_document

    if lang not in LANGS:
        raise typer.BadParameter(
            f"unknown language {lang!r}; choose en, hi or mr", param_hint="--lang"
        )
    pdf = render_pdf(doc, lang=lang)
    root = load_settings().documents_dir
    target = Path(output) if output else document_path(root, doc).with_suffix(f".{lang}.pdf")
    return store_document(target, pdf)


def _document(kind: str, ref: str) -> Any:
    from billing_jobs.invoicing.credit_notes import find_credit_note_id
    from billing_jobs.invoicing.documents.from_ledger import (
        DocumentSourceError,
        credit_note_document,
        invoice_document,
    )
    from billing_jobs.invoicing.invoices import find_invoice_id

    def action(engine: Any) -> Any:
        if kind == "credit_note":
            return credit_note_document(engine, find_credit_note_id(engine, ref))
        return invoice_document(engine, find_invoice_id(engine, ref))

    try:
        return run_domain(action)
    except DocumentSourceError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


@invoices_app.command("pdf")
def invoices_pdf(
    number: Annotated[
        str, typer.Argument(help="Invoice or credit note number (INV/2627/000001, CN/...).")
    ],
    lang: LangOption = "en",
    output: OutputOption = None,
) -> None:
    """Render an invoice's (or a credit note's) PDF in a language and print where it is."""
    kind = "credit_note" if number.upper().startswith("CN/") else "invoice"
    typer.echo(str(_write_pdf(_document(kind, number), lang, output)))


@invoices_app.command("run")
def invoices_run(
    limit: Annotated[int | None, typer.Option(min=1, max=1_000_000)] = None,
    no_mail: Annotated[bool, typer.Option("--no-mail")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    as_json: JsonOption = False,
) -> None:
    """Render, store and queue (and send, when PAYSIGHT_SMTP_URL is set) the documents of new
    invoices and credit notes."""
    from billing_jobs.invoicing.documents.invoice_run import run_invoice_documents
    from billing_jobs.invoicing.mail import SmtpSettings, send_due

    settings = load_settings()
    now = parse_instant(as_of, "--as-of")

    def action(engine: Any) -> dict[str, Any]:
        report = run_invoice_documents(
            engine, settings.documents_dir, now, limit=limit, mail=not no_mail
        )
        settings.sync_location("documents_url")  # s3://: one object per new document
        sent = 0
        if not no_mail and settings.smtp_url is not None:
            smtp = SmtpSettings.from_url(settings.smtp_url.get_secret_value())
            sent = len(send_due(engine, now, smtp).sent)
        return {"rendered": report.rendered, "queued": report.queued, "sent": sent,
                "not_mailed_no_address": report.skipped, "errors": report.errors}  # fmt: skip

    def render(r: dict[str, Any]) -> None:
        typer.echo(f"documents rendered {r['rendered']}, mails queued {r['queued']}, sent "
                   f"{r['sent']}, stored without an e-mail address {r['not_mailed_no_address']}")  # fmt: skip
        for err in r["errors"]:
            typer.echo(f"  error: {err}")

    emit(run_domain(action), as_json, "invoice run", render)


# -- credit notes ---------------------------------------------------------------------------
@notes_app.command("list")
def notes_list(
    customer_id: CustomerOption = None,
    invoice: Annotated[str | None, typer.Option("--invoice", help="Invoice id or number.")] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Credit notes with the invoice each one credits."""
    from billing_jobs.invoicing.credit_notes import list_credit_notes
    from billing_jobs.invoicing.invoices import find_invoice_id

    limit = parse_count(limit)
    rows = run_domain(
        lambda e: list_credit_notes(
            e, customer_id=customer_id,
            invoice_id=find_invoice_id(e, invoice) if invoice else None, limit=limit,
        )
    )  # fmt: skip

    def render(ns: list[dict[str, Any]]) -> None:
        if not ns:
            typer.echo("no credit notes")
            return
        table(
            [(n["id"], n["number"], n["invoice_number"], n["reason"], n["issued_at"][:10],
              n["customer_id"], money(n["taxable_minor"], n["currency"]),
              money(n["total_minor"], n["currency"]), n["destination"].replace("_", " "))
             for n in ns],
            ["id", "number", "invoice", "reason", "issued", "customer", "taxable", "total", "to"],
            right=(0, 5, 6, 7),
        )  # fmt: skip

    emit(rows, as_json, render=render)


@notes_app.command("show")
def notes_show(
    credit_note: Annotated[str, typer.Argument(help="Credit note id or number (CN/2627/000001).")],
    as_json: JsonOption = False,
) -> None:
    """Show a credit note with its lines and the invoice it credits."""
    from billing_jobs.invoicing.credit_notes import find_credit_note_id, get_credit_note

    out = run_domain(lambda e: get_credit_note(e, find_credit_note_id(e, credit_note)))
    emit(out, as_json, render=_render_note)


@notes_app.command("pdf")
def notes_pdf(
    number: Annotated[str, typer.Argument(help="Credit note id or number (CN/2627/000001).")],
    lang: LangOption = "en",
    output: OutputOption = None,
) -> None:
    """Render a credit note's PDF (Rule 53: it names the original invoice) and print where."""
    typer.echo(str(_write_pdf(_document("credit_note", number), lang, output)))


def register(app: typer.Typer) -> None:
    app.add_typer(invoices_app, name="invoices")
    app.add_typer(notes_app, name="credit-notes")
