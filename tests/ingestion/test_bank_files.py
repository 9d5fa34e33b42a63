"""Bank settlement CSV parsing: exact amounts, line-numbered rejects, hostile files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingestion.bank_files import BankFileError, parse_bank_settlement_csv

HEADER = "settlement_id,utr,payment_id,gross,fee,tax,net,settled_at,currency\n"


def _csv(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(line + "\n" for line in lines)).encode()


def test_valid_file_parses_exact_minor_units(tmp_path):
    path = tmp_path / "settlement.csv"
    path.write_bytes(
        _csv(
            "setl_1,UTR001,pay_A,1234.50,29.13,5.24,1200.13,2026-09-21 10:15:00,INR",
            "setl_1,UTR001,pay_B,0.10,0,0,0.10,2026-09-21T04:45:00Z,inr",
            "setl_2,UTR002,pay_C,500,10,1.8,488.2,2026-09-22,JPY",
        )
    )
    rows, rejects = parse_bank_settlement_csv(path)
    assert rejects[0].line_number == 4 and "decimals" in rejects[0].reason  # JPY has none
    assert [r.payment_id for r in rows] == ["pay_A", "pay_B"]
    a, b = rows
    assert (a.gross_minor, a.fee_minor, a.tax_minor, a.net_minor) == (123450, 2913, 524, 120013)
    assert a.currency == "INR" and a.line_number == 2
    # Naive bank times are IST.
    assert a.settled_at == datetime(2026, 9, 21, 4, 45, tzinfo=UTC)
    assert b.settled_at == a.settled_at and b.gross_minor == 10


def test_minor_unit_columns_and_aliases():
    header = "Settlement ID,Settlement UTR,Entity ID,Amount_minor,Fee_minor,Tax_minor,Net_minor,Settled At,Currency\n"
    rows, rejects = parse_bank_settlement_csv(
        _csv("setl_9,UTR9,pay_9,100000,2360,360,97280,2026-01-05,INR", header=header)
    )
    assert rejects == []
    assert (rows[0].gross_minor, rows[0].net_minor, rows[0].utr) == (100000, 97280, "UTR9")
    with pytest.raises(BankFileError, match="fee"):
        parse_bank_settlement_csv(b"settlement_id,utr,payment_id,gross,tax,net,settled_at\n")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("setl_1,UTR1,pay_1,12.345,0,0,12.345,2026-09-21,INR", "more than 2 decimals"),
        ("setl_1,UTR1,pay_1,1e3,0,0,1000,2026-09-21,INR", "not a non-negative decimal"),
        ('setl_1,UTR1,pay_1,"1,234.50",0,0,1234.50,2026-09-21,INR', "thousands"),
        ("setl_1,UTR1,pay_1,-5.00,0,0,-5.00,2026-09-21,INR", "no signs"),
        ("setl_1,UTR1,pay_1,,0,0,1.00,2026-09-21,INR", "gross is empty"),
        ("setl_1,UTR1,pay_1,100.00,2.00,0.36,97.00,2026-09-21,INR", "net 9700 != gross 10000"),
        ("setl_1,UTR1,pay_1,1.00,0,0,1.00,21/09/2026,INR", "ISO-8601"),
        ("setl_1,UTR1,pay_1,1.00,0,0,1.00,2026-09-21,RUPEES", "unknown currency"),
        (",UTR1,pay_1,1.00,0,0,1.00,2026-09-21,INR", "settlement_id is empty"),
        ("setl_1,UTR1,pay_1,1.00,0,0,1.00,2026-09-21", "expected 9 fields, got 8"),
        ("setl_1,UTR1,pay 1,1.00,0,0,1.00,2026-09-21,INR", "characters outside"),
    ],
)
def test_malformed_lines_are_rejected_with_line_and_reason(line, reason):
    good = "setl_0,UTR0,pay_0,1.00,0,0,1.00,2026-09-20,INR"
    rows, rejects = parse_bank_settlement_csv(_csv(good, line, good.replace("pay_0", "pay_Z")))
    assert [r.payment_id for r in rows] == ["pay_0", "pay_Z"]
    assert len(rejects) == 1
    assert rejects[0].line_number == 3
    assert reason in rejects[0].reason


def test_duplicates_keep_the_first_and_name_it():
    line = "setl_1,UTR1,pay_1,10.00,0.20,0.04,9.76,2026-09-21,INR"
    conflicting = "setl_1,UTR1,pay_1,11.00,0.20,0.04,10.76,2026-09-21,INR"
    rows, rejects = parse_bank_settlement_csv(_csv(line, line, conflicting))
    assert len(rows) == 1 and rows[0].line_number == 2
    assert [(r.line_number, r.reason.split(" line")[0]) for r in rejects] == [
        (3, "duplicate of"),
        (4, "conflicts with"),
    ]
    assert "line 2" in rejects[0].reason


def test_out_of_order_dates_all_load_in_file_order():
    rows, rejects = parse_bank_settlement_csv(
        _csv(
            "setl_3,U3,pay_3,1.00,0,0,1.00,2026-09-23,INR",
            "setl_1,U1,pay_1,1.00,0,0,1.00,2026-09-21,INR",
            "setl_2,U2,pay_2,1.00,0,0,1.00,2026-09-22,INR",
        )
    )
    assert rejects == []
    assert [r.settlement_id for r in rows] == ["setl_3", "setl_1", "setl_2"]
    assert min(r.settled_at for r in rows).day == 20  # 2026-09-21 00:00 IST is the 20th UTC


def test_formula_injection_is_refused():
    rows, rejects = parse_bank_settlement_csv(
        _csv(
            '=HYPERLINK("http://evil"),UTR1,pay_1,1.00,0,0,1.00,2026-09-21,INR',
            "setl_2,+cmd|' /C calc'!A0,pay_2,1.00,0,0,1.00,2026-09-21,INR",
            "setl_3,UTR3,@SUM(A1),1.00,0,0,1.00,2026-09-21,INR",
            "setl_4,UTR4,pay_4,1.00,0,0,1.00,2026-09-21,=1+1",
        )
    )
    assert rows == []
    assert [r.line_number for r in rejects] == [2, 3, 4, 5]
    assert all("formula" in r.reason for r in rejects)


def test_bom_crlf_and_blank_lines():
    data = (
        "\ufeff"
        + HEADER.replace("\n", "\r\n")
        + "setl_1,UTR1,pay_1,1.00,0,0,1.00,2026-09-21,INR\r\n\r\n"
        + "setl_1,UTR1,pay_2,2.00,0,0,2.00,2026-09-21,INR\r\n"
    ).encode()
    rows, rejects = parse_bank_settlement_csv(data)
    assert rejects == []
    assert [(r.payment_id, r.line_number) for r in rows] == [("pay_1", 2), ("pay_2", 4)]


def test_huge_fields_nul_bytes_and_multiline_quotes():
    huge = "x" * 200_000
    rows, rejects = parse_bank_settlement_csv(
        _csv(
            f"setl_1,UTR1,{huge},1.00,0,0,1.00,2026-09-21,INR",
            "setl_2,UTR2,pay_2,1.00,0,0,1.00,2026-09-21,INR",
            f"setl_3,UTR3,{'y' * 1000},1.00,0,0,1.00,2026-09-21,INR",
            "setl_4,UTR4,pay\x004,1.00,0,0,1.00,2026-09-21,INR",
            'setl_5,"UTR\n5",pay_5,1.00,0,0,1.00,2026-09-21,INR',
            "setl_6,UTR6,pay_6,1.00,0,0,1.00,2026-09-21,INR",
        )
    )
    assert [r.payment_id for r in rows] == ["pay_2", "pay_6"]
    assert [r.line_number for r in rows] == [3, 8]
    reasons = {r.line_number: r.reason for r in rejects}
    assert "longer than 65536 bytes" in reasons[2]  # never held whole in memory
    assert "longer than 256" in reasons[4]
    assert "NUL" in reasons[5]
    assert "not closed on this line" in reasons[6]  # a field never spans lines
    assert "expected 9 fields" in reasons[7]
    assert all(len(r.raw) <= 200 for r in rejects)


def test_file_level_errors():
    with pytest.raises(BankFileError, match="not UTF-8"):
        parse_bank_settlement_csv(b"settlement_id,\xff\xfe,pay\n")  # the header
    with pytest.raises(BankFileError, match="no header"):
        parse_bank_settlement_csv(b"\n\n")
    with pytest.raises(BankFileError, match="header line is longer"):
        parse_bank_settlement_csv(_csv("a" * 100), max_line_bytes=50)
    with pytest.raises(BankFileError, match="appears twice"):
        parse_bank_settlement_csv(b"utr,utr,settlement_id\n")


def test_missing_currency_uses_default_only_when_allowed():
    header = "settlement_id,utr,payment_id,gross,fee,tax,net,settled_at\n"
    data = _csv("setl_1,UTR1,pay_1,1.00,0,0,1.00,2026-09-21", header=header)
    rows, _ = parse_bank_settlement_csv(data)
    assert rows[0].currency == "INR"
    rows, rejects = parse_bank_settlement_csv(data, default_currency=None)
    assert rows == [] and rejects[0].reason == "currency is empty"


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=10**6))
def test_major_unit_amounts_round_trip_exactly(gross, fee):
    fee = min(fee, gross)

    def major(minor: int) -> str:
        return f"{minor // 100}.{minor % 100:02d}"

    line = f"setl_1,UTR1,pay_1,{major(gross)},{major(fee)},0,{major(gross - fee)},2026-09-21,INR"
    rows, rejects = parse_bank_settlement_csv(_csv(line))
    assert rejects == []
    assert (rows[0].gross_minor, rows[0].fee_minor, rows[0].net_minor) == (gross, fee, gross - fee)


def test_an_unterminated_quote_rejects_only_its_line():
    rows, rejects = parse_bank_settlement_csv(
        _csv(
            'setl_1,"UTR1,pay_1,1.00,0,0,1.00,2026-09-21,INR',  # the quote is never closed
            "setl_2,UTR2,pay_2,2.00,0,0,2.00,2026-09-21,INR",
            'setl_3,UTR3,pay_3,3.00,0,0,3.00,2026-09-21,"INR',
            "setl_4,UTR4,pay_4,4.00,0,0,4.00,2026-09-21,INR",
        )
    )
    assert [(r.payment_id, r.line_number) for r in rows] == [("pay_2", 3), ("pay_4", 5)]
    assert [(r.line_number, "not closed" in r.reason) for r in rejects] == [(2, True), (4, True)]


def test_a_line_that_is_not_utf8_rejects_only_itself():
    data = _csv("setl_1,UTR1,pay_1,1.00,0,0,1.00,2026-09-21,INR")
    data += b"setl_2,UTR\xff\xfe2,pay_2,2.00,0,0,2.00,2026-09-21,INR\n"
    data += b"setl_3,UTR3,pay_3,3.00,0,0,3.00,2026-09-21,INR\n"
    rows, rejects = parse_bank_settlement_csv(data)
    assert [r.payment_id for r in rows] == ["pay_1", "pay_3"]
    assert [(r.line_number, r.reason) for r in rejects] == [(3, "line is not UTF-8 (byte 11)")]


@pytest.mark.slow
def test_a_file_far_larger_than_memory_needs_is_streamed(tmp_path):
    """70 MB (past the old 64 MB whole-file limit, which lost every row of such a file):
    every line is parsed and the parser holds about one line at a time."""
    import tracemalloc

    from ingestion.bank_files import iter_bank_settlement_csv

    memo = "m" * 250  # wide lines (exports carry many columns): few rows, so the test is quick
    header = HEADER.rstrip("\n") + "".join(f",memo{i}" for i in range(200)) + "\n"
    line = ",0.00,0,0,0.00,2026-09-21,INR" + f",{memo}" * 200 + "\n"
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write(header)
        n = 0
        while f.tell() < 70 * 1024 * 1024:
            f.write(f"setl_{n // 1000},UTR{n},pay_{n}{line}")
            n += 1
    tracemalloc.start()
    try:
        counted = rejected = 0
        for item in iter_bank_settlement_csv(path):
            if hasattr(item, "reason"):
                rejected += 1
            else:
                counted += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (counted, rejected) == (n, 0)
    assert peak < 4 * 1024 * 1024, peak  # a line or so, never the file
