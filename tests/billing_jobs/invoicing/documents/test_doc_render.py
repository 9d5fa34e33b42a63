"""PDF rendering: mandatory CGST Rule 46 fields, credit notes, Hindi glyphs, brands, paths."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader
from pypdf.generic import ContentStream

from billing_jobs.invoicing.documents import (
    DocumentKind,
    EInvoice,
    RenderError,
    TemplateError,
    available_versions,
    build_view,
    compute_irn,
    document_path,
    irn_for,
    qr_payload,
    render_pdf,
    resolve_template,
)
from billing_jobs.invoicing.documents.i18n import LABELS, format_amount
from billing_jobs.invoicing.documents.sample import sample_invoice
from billing_jobs.invoicing.documents.templates import FONT_DIR


def _text(pdf: bytes) -> str:
    # Typst maps a shaped cluster's text onto its first glyph and leaves the cluster's other
    # glyphs without a ToUnicode entry; pypdf prints those as raw control codes, so drop them.
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def intra_pdf() -> tuple[object, bytes]:
    doc = sample_invoice(11, 7, intra_state=True, einvoice=True)
    return doc, render_pdf(doc)


def test_tax_invoice_has_every_mandatory_field(intra_pdf) -> None:
    doc, pdf = intra_pdf
    assert pdf.startswith(b"%PDF")
    text = _text(pdf)
    flat = _flat(text)
    for needle in (
        doc.supplier.name,
        doc.recipient.name,
        doc.supplier.gstin,
        doc.recipient.gstin,
        *doc.supplier.address,
        *doc.recipient.address,
        doc.number,
        "3 Oct 2025",
        "Place of Supply",
        "Karnataka (29)",
        "Tax Invoice".upper(),
        "Tax payable on reverse charge",
        "Round-off",
        "Authorised Signatory",
        "CGST",
        "SGST",
        "Taxable Value",
        "SAC/HSN",
        "Amount in words".upper(),
    ):
        assert _flat(needle) in flat, needle
    for line in doc.lines:
        assert line.sac_hsn in text
    # taxable values and tax amounts with Indian grouping; rates as percentages
    from billing_jobs.invoicing.documents.i18n import format_amount

    for ln in doc.lines:
        assert format_amount(ln.taxable_value_minor, "INR", "en_IN") in text
        assert format_amount(ln.cgst_minor, "INR", "en_IN") in text
    assert "9%" in text or "2.5%" in text or "6%" in text
    assert "₹" in text and format_amount(doc.totals.total_minor, "INR", "en_IN") in text
    assert "Rupees" in text and "Only" in flat


def test_einvoice_irn_and_qr_are_embedded(intra_pdf) -> None:
    doc, pdf = intra_pdf
    irn = irn_for(doc)
    assert irn == compute_irn(doc.supplier.gstin, "2025-26", "INV", doc.number)
    assert irn in _flat(_text(pdf))
    # The QR is a vector path: read its modules back and compare with a fresh encoding of
    # the payload, so a broken SVG writer cannot pass.
    import qrcode

    svg = build_view(doc)["qr"]
    payload = qr_payload(doc)
    assert irn in payload and doc.supplier.gstin in payload
    ref = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=4)
    ref.add_data(payload, optimize=0)  # one byte-mode segment, as the renderer encodes it
    ref.make(fit=True)
    size = len(ref.modules)
    drawn = [[False] * size for _ in range(size)]
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)", svg):
        for dx in range(int(w)):
            drawn[int(y) - 2][int(x) - 2 + dx] = True
    assert drawn == [[bool(m) for m in row] for row in ref.modules]


def test_irn_is_sha256_of_identity() -> None:
    import hashlib

    expected = hashlib.sha256(b"29AABCP1234C1Z52025-26INVINV/2526/00001").hexdigest()
    assert compute_irn("29AABCP1234C1Z5", "2025-26", "INV", "inv/2526/00001") == expected
    doc = sample_invoice(3, 5, einvoice=True)
    given = sample_invoice(3, 5, einvoice=False)
    assert irn_for(doc) != compute_irn("29AABCP1234C1Z5", "2025-26", "CRN", doc.number)
    from dataclasses import replace

    pinned = replace(given, einvoice=EInvoice(irn="a" * 64))
    assert irn_for(pinned) == "a" * 64


def test_inter_state_shows_igst_only() -> None:
    doc = sample_invoice(12, 5, intra_state=False, einvoice=False)
    text = _text(render_pdf(doc))
    assert "IGST" in text and "CGST" not in text and "SGST" not in text
    assert "Maharashtra (27)" in text


def test_credit_note_references_original_invoice() -> None:
    doc = sample_invoice(13, 5, kind=DocumentKind.CREDIT_NOTE, einvoice=False)
    text = _text(render_pdf(doc))
    assert "CREDIT NOTE" in text
    assert "Against Invoice No." in text and doc.original_invoice.number in text
    assert "13 Sept 2025" in text  # original invoice date


def _embedded_fonts(pdf: bytes) -> set[str]:
    """PostScript names of the fonts embedded in the PDF (subset tag stripped)."""
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendant = font["/DescendantFonts"][0].get_object()
            assert "/FontFile2" in descendant["/FontDescriptor"], "font not embedded"
            names.add(str(font["/BaseFont"]).lstrip("/").split("+", 1)[-1])
    return names


def _notdef_glyphs(pdf: bytes) -> int:
    """How many glyphs drawn are .notdef (CID 0 with an Identity map): Typst draws a missing
    character that way instead of failing."""
    reader = PdfReader(io.BytesIO(pdf))
    count = 0
    for page in reader.pages:
        for operands, op in ContentStream(page.get_contents(), reader).operations:
            if op not in (b"Tj", b"TJ"):
                continue
            items = operands[0] if op == b"TJ" else operands
            for item in items:
                if isinstance(item, str | bytes):
                    raw = item.original_bytes if hasattr(item, "original_bytes") else bytes(item)
                    codes = [raw[i : i + 2] for i in range(0, len(raw), 2)]
                    count += sum(1 for c in codes if c == b"\x00\x00")
    return count


def test_notdef_detector_catches_missing_glyphs() -> None:
    import typst

    src = Path(__file__).parent / "_tofu.typ"
    try:
        src.write_text('#set text(font: ("Noto Sans", "Noto Sans Devanagari"))\nA 中 த')
        pdf = typst.compile(str(src), font_paths=[str(FONT_DIR)], ignore_system_fonts=True)
    finally:
        src.unlink()
    assert _notdef_glyphs(pdf) == 2


@pytest.fixture(scope="module")
def hindi_pdf() -> bytes:
    return render_pdf(sample_invoice(14, 6, intra_state=False, einvoice=True), lang="hi")


def test_hindi_text_extracts_as_devanagari(hindi_pdf) -> None:
    text = _text(hindi_pdf)
    assert re.search(r"[\u0900-\u097F]{3,}", text)
    # words without pre-base vowel signs survive extraction in logical order
    for word in ("कर बीजक", "राज्य", "नहीं"):
        assert word in text, word


def test_every_hindi_character_has_an_embedded_glyph(hindi_pdf) -> None:
    assert _notdef_glyphs(hindi_pdf) == 0
    embedded = _embedded_fonts(hindi_pdf)
    assert {"NotoSansDevanagari-Regular", "NotoSansDevanagari-Bold"} <= embedded
    # The embedded subsets carry no cmap, so check against the bundled originals they came from.
    cmaps = [TTFont(FONT_DIR / f"{name}.ttf").getBestCmap() for name in embedded]
    view = build_view(sample_invoice(14, 6, intra_state=False, einvoice=True), lang="hi")
    printed = "".join(LABELS["hi"].values()) + view["words"] + view["recipient"]["name"]
    printed += "".join(m[0] + m[1] for m in view["meta"])
    missing = {c for c in printed if not c.isspace() and not any(ord(c) in m for m in cmaps)}
    assert not missing, f"no embedded glyph for {sorted(missing)}"


def test_no_glyph_missing_in_any_language() -> None:
    for lang in ("en", "hi", "mr"):
        doc = sample_invoice(21, 8, intra_state=lang != "en", einvoice=True)
        assert _notdef_glyphs(render_pdf(doc, lang=lang)) == 0, lang


@pytest.mark.parametrize("lang", ["hi", "mr"])
def test_bundled_fonts_cover_all_labels(lang: str) -> None:
    cmaps = [TTFont(p).getBestCmap() for p in FONT_DIR.glob("*-Regular.ttf")]
    text = "".join(LABELS[lang].values())
    missing = {c for c in text if not c.isspace() and not any(ord(c) in m for m in cmaps)}
    assert not missing, f"{lang}: bundled fonts lack {sorted(missing)}"


def test_fonts_and_licence_are_bundled() -> None:
    names = {p.name for p in FONT_DIR.iterdir()}
    assert {"NotoSansDevanagari-Regular.ttf", "NotoSansDevanagari-Bold.ttf", "OFL.txt"} <= names
    assert "SIL Open Font License" in (FONT_DIR / "OFL.txt").read_text()


def test_marathi_renders_with_marathi_labels() -> None:
    text = _text(render_pdf(sample_invoice(15, 5), lang="mr"))
    assert "नाही" in text and "राज्य" in text and "Rupees" in text


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        render_pdf(sample_invoice(1, 5), lang="fr")


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) absent")
def test_rendered_page_is_not_blank(tmp_path: Path, hindi_pdf) -> None:
    src = tmp_path / "doc.pdf"
    src.write_bytes(hindi_pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-gray", str(src), str(tmp_path / "p")], check=True)
    page = sorted(tmp_path.glob("p-*.pgm"))[0].read_bytes()
    # PGM: header then one byte per pixel; count dark pixels (text, table header, QR).
    pixels = page[page.index(b"255\n") + 4 :]
    dark = sum(1 for b in pixels if b < 128)
    assert dark / len(pixels) > 0.02


def test_brand_override_changes_colours_and_pins_version() -> None:
    default = resolve_template(brand=None)
    sunrise = resolve_template(brand="sunrise")
    assert sunrise.brand.primary_colour == "#b3471d" != default.brand.primary_colour
    assert sunrise.version == 1 and sunrise.brand.logo_svg != default.brand.logo_svg
    view = build_view(sample_invoice(2, 5, brand="sunrise"), template=sunrise)
    assert view["brand"]["footer"].startswith("Sunrise Learning")
    pdf = render_pdf(sample_invoice(2, 5), brand="sunrise")
    assert "Sunrise Learning" in _text(pdf)


def test_template_registry_errors() -> None:
    assert available_versions("invoice") == [1, 2, 3]
    with pytest.raises(TemplateError, match="version 9 does not exist"):
        render_pdf(sample_invoice(1, 5), template_version=9)
    with pytest.raises(TemplateError, match="unknown brand"):
        resolve_template(brand="nope")
    with pytest.raises(TemplateError, match="lower-case"):
        resolve_template(brand="../default")


def test_brand_template_override_wins(tmp_path: Path, monkeypatch) -> None:
    from billing_jobs.invoicing.documents import templates

    root = tmp_path / "templates"
    shutil.copytree(templates.TEMPLATE_ROOT, root)
    own = root / "brands" / "sunrise" / "invoice"
    own.mkdir(parents=True)
    (own / "v1.typ").write_text("#let d = json(bytes(sys.inputs.data))\nOWN TEMPLATE #d.number\n")
    (own / "v2.typ").write_text('#let d = json(bytes(sys.inputs.data))\n#panic("broken")\n')
    monkeypatch.setattr(templates, "TEMPLATE_ROOT", root)
    templates.load_brand.cache_clear()
    try:
        doc = sample_invoice(4, 5)
        assert "OWN TEMPLATE" in _text(render_pdf(doc, brand="sunrise"))
        assert available_versions("invoice", "sunrise") == [1, 2, 3]
        with pytest.raises(RenderError, match="broken"):
            render_pdf(doc, brand="sunrise", template_version=2)
        assert "OWN TEMPLATE" not in _text(render_pdf(doc))
    finally:
        templates.load_brand.cache_clear()


@pytest.mark.parametrize("version", [2, 3])
def test_later_versions_print_what_v1_prints_and_repeat_the_item_header(version: int) -> None:
    doc = sample_invoice(7, 30, intra_state=True, einvoice=True)
    assert resolve_template().version == 3  # the default: v1 and v2 stay for pinned brands
    old, new = render_pdf(doc, template_version=1), render_pdf(doc, template_version=version)
    old_text, new_text = _flat(_text(old)), _flat(_text(new))
    for ln in doc.lines:
        for value in (ln.taxable_value_minor, ln.cgst_minor, ln.taxable_value_minor + ln.tax_minor):
            cell = format_amount(value, "INR", "en_IN")
            assert cell in old_text and cell in new_text
    for t in (doc.totals.taxable_minor, doc.totals.cgst_minor, doc.totals.sgst_minor):
        assert format_amount(t, "INR", "en_IN") in old_text
        assert format_amount(t, "INR", "en_IN") in new_text
    for value in (doc.number, "3Oct2025", "Karnataka(29)", "2025-26"):  # _flat drops spaces
        assert value in old_text and value in new_text
    assert (
        irn_for(doc) in new_text
        and format_amount(doc.totals.total_minor, "INR", "en_IN") in new_text
    )
    pages = PdfReader(io.BytesIO(new)).pages
    assert len(pages) >= 2
    # The column header comes back on the continuation page, as v1's table header did.
    assert "SAC/HSN" in pages[0].extract_text() and "SAC/HSN" in pages[1].extract_text()
    assert "1/2" in _flat(pages[0].extract_text()) and "2/2" in _flat(pages[1].extract_text())


def test_output_is_deterministic() -> None:
    doc = sample_invoice(5, 6)
    assert render_pdf(doc) == render_pdf(doc)


def test_document_path() -> None:
    doc = sample_invoice(42, 5)
    path = document_path("/data/invoices", doc)
    assert path == Path("/data/invoices/2025-26/INV_2526_00042.pdf")
    early = sample_invoice(42, 5, issue_date=date(2026, 3, 31))
    assert document_path(Path("r"), early).parent == Path("r/2025-26")
    april = sample_invoice(42, 5, issue_date=date(2026, 4, 1))
    assert document_path(Path("r"), april) == Path("r/2026-27/INV_2627_00042.pdf")
