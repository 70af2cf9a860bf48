"""Imported CRM/commerce records: row → event shape, idempotent re-import, the data-quality pass, mappings,
and the three file formats."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from takt.cli.main import main
from takt.errors import TaktError
from takt.events.model import known_kinds
from takt.ingest.records import (
    ImportOptions,
    import_file,
    load_mapping_file,
    normalize_email,
    normalize_phone,
    parse_map_flags,
)
from takt.storage.duckdb import DuckDBStorage
from takt.workspace import init

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

CUSTOMER_COLS = ["crm_id", "email", "phone", "first_name", "last_name", "country", "city", "birthday",
                 "street", "postal_code", "updated_at"]
GOOD_CUSTOMERS = [
    ["C1", " Ann@Example.com ", "+49 151 23456789", "Ann", "Berg", "DE", "Berlin", "1985-03-02",
     "Hauptstr. 1", "10115", "2026-01-05T10:00:00Z"],
    ["C2", "bob@example.org", "", "Bob", "Kurz", "AT", "Wien", "", "", "", ""],
]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[DuckDBStorage]:
    s = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        yield s
    finally:
        s.close()


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_rejects(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def records(storage: DuckDBStorage) -> list[dict[str, Any]]:
    return [se.event.properties for se in storage.log.read()]


def opts(**kw: Any) -> ImportOptions:
    return ImportOptions(source=kw.pop("source", "crm"), **kw)


# ---- shape ----
def test_record_kind_is_registered() -> None:
    assert known_kinds()["record"] == "imported CRM/commerce record"


def test_customer_rows_become_record_events(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "customers.csv", CUSTOMER_COLS, GOOD_CUSTOMERS)
    summary = import_file(storage.log, path, "customers", opts(), now=NOW)
    assert (summary.read, summary.imported, summary.rejected, summary.duplicates) == (2, 2, 0, 0)
    first, second = (se.event for se in storage.log.read())
    assert first.kind == "record" and first.source == "crm" and first.provenance == "crm_import"
    assert first.timestamp == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert first.received_at == NOW
    assert len(first.message_id) <= 100
    assert first.properties == {
        "record_type": "customer",
        "row_key": "C1",
        "identifiers": {"crm_id": "C1", "email": "ann@example.com", "phone": "+4915123456789"},
        "traits": {"first_name": "Ann", "last_name": "Berg", "country": "DE", "city": "Berlin",
                   "birthday": "1985-03-02"},
        "contact_points_customer_given": True,
        "postal_address": {"street": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin", "country": "DE"},
    }
    # no date in the row: the import's now; no address: no postal_address key
    assert second.timestamp == NOW
    assert second.properties == {
        "record_type": "customer", "row_key": "C2",
        "identifiers": {"crm_id": "C2", "email": "bob@example.org"},
        "traits": {"first_name": "Bob", "last_name": "Kurz", "country": "AT", "city": "Wien"},
        "contact_points_customer_given": True,
    }


def test_third_party_contact_points(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "vendor.csv", ["vendor_ref", "email", "phone"],
                     [["V9", "ann@example.com", "+44 7911 123456"]])
    import_file(storage.log, path, "customer",
                opts(source="enrichment-vendor", provenance="third_party", customer_given=False,
                     mapping={"row_key": "vendor_ref"}), now=NOW)
    (se,) = storage.log.read()
    assert se.event.source == "enrichment-vendor" and se.event.provenance == "third_party"
    assert se.event.properties["identifiers"] == {"email": "ann@example.com", "phone": "+447911123456"}
    assert se.event.properties["contact_points_customer_given"] is False
    assert se.event.properties["row_key"] == "V9"


def test_order_case_and_product_shapes(storage: DuckDBStorage, tmp_path: Path) -> None:
    orders = write_csv(tmp_path / "orders.csv",
                       ["order_id", "crm_id", "revenue", "currency", "products", "store", "status", "ordered_at"],
                       [["O1", "C1", "129.90", "eur",
                         json.dumps([{"product_id": "P1", "category": "tents", "price": 99.9, "quantity": 1},
                                     {"product_id": "P2", "category": "guidebooks", "price": "15", "quantity": 2}]),
                         "berlin-mitte", "", "2026-03-01"]])
    single = write_csv(tmp_path / "orders2.csv",
                       ["order_id", "email", "revenue", "product_id", "category", "price", "quantity"],
                       [["O2", "x@y.de", "10", "P3", "socks", "5", "2"]])
    cases = write_csv(tmp_path / "cases.csv",
                      ["case_id", "crm_id", "status", "subject", "channel", "product_id", "in_repair", "opened_at"],
                      [["K1", "C1", "Open", "Zipper broken", "call_center", "P1", "yes", "2026-04-02T09:30:00"]])
    products = write_csv(tmp_path / "products.csv", ["product_id", "name", "category", "price", "interests"],
                         [["P1", "Dome Tent 2", "tents", "99.90", "activity:camping;climate:temperate"]])
    for path, rt in ((orders, "orders"), (single, "orders"), (cases, "cases"), (products, "products")):
        s = import_file(storage.log, path, rt, opts(), now=NOW)
        assert s.imported == 1 and s.rejected == 0, s.lines()
    o1, o2, k1, p1 = (se.event for se in storage.log.read())
    assert o1.timestamp == datetime(2026, 3, 1, tzinfo=UTC)
    assert o1.properties == {
        "record_type": "order", "row_key": "O1", "identifiers": {"crm_id": "C1"}, "order_id": "O1",
        "revenue": 129.9, "currency": "EUR",
        "products": [{"product_id": "P1", "category": "tents", "price": 99.9, "quantity": 1},
                     {"product_id": "P2", "category": "guidebooks", "price": 15.0, "quantity": 2}],
        "categories": ["guidebooks", "tents"], "store": "berlin-mitte", "status": "completed",
    }
    assert o2.properties["identifiers"] == {"email": "x@y.de"}
    assert o2.properties["products"] == [{"product_id": "P3", "category": "socks", "price": 5.0, "quantity": 2}]
    assert k1.timestamp == datetime(2026, 4, 2, 9, 30, tzinfo=UTC)
    assert k1.properties == {
        "record_type": "case", "row_key": "K1", "identifiers": {"crm_id": "C1"}, "case_id": "K1",
        "status": "open", "subject": "Zipper broken", "channel": "call_center", "product_id": "P1",
        "in_repair": True,
    }
    assert p1.properties == {
        "record_type": "product", "row_key": "P1", "product_id": "P1", "name": "Dome Tent 2",
        "category": "tents", "price": 99.9, "interests": ["activity:camping", "climate:temperate"],
    }
    assert p1.user_id is None and p1.anonymous_id is None and "identifiers" not in p1.properties


# ---- idempotency ----
def test_reimport_stores_nothing_new(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "customers.csv", CUSTOMER_COLS, GOOD_CUSTOMERS)
    import_file(storage.log, path, "customers", opts(), now=NOW)
    again = import_file(storage.log, path, "customers", opts(), now=datetime(2026, 12, 1, tzinfo=UTC))
    assert (again.read, again.imported, again.already_present) == (2, 0, 2)
    assert storage.log.count() == 2


def test_changed_row_is_stored_as_a_new_version(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "customers.csv", CUSTOMER_COLS, GOOD_CUSTOMERS)
    import_file(storage.log, path, "customers", opts(), now=NOW)
    moved = [[*GOOD_CUSTOMERS[0][:6], "Hamburg", *GOOD_CUSTOMERS[0][7:]], GOOD_CUSTOMERS[1]]
    write_csv(path, CUSTOMER_COLS, moved)
    again = import_file(storage.log, path, "customers", opts(), now=NOW)
    assert (again.imported, again.already_present) == (1, 1)
    assert [r["traits"]["city"] for r in records(storage) if r["row_key"] == "C1"] == ["Berlin", "Hamburg"]


# ---- data quality ----
BAD_ROWS = [
    ["C1", "ann@example.com", "", "Ann", "", "", "", "", "", "", ""],       # 1 good
    ["C2", "not-an-email", "", "", "", "", "", "", "", "", ""],              # 2 invalid email
    ["C3", "c@x.com", "12345", "", "", "", "", "", "", "", ""],              # 3 invalid phone
    ["C1", "dup@example.com", "", "", "", "", "", "", "", "", ""],           # 4 duplicate of row 1
    ["", "nokey@example.com", "", "", "", "", "", "", "", "", ""],           # 5 missing row key
    ["C6", "f@x.com", "", "", "", "", "", "1850-01-01", "", "", ""],         # 6 birthday before 1900
    ["C7", "g@x.com", "", "", "", "", "", "", "", "", "2099-01-01"],         # 7 far future
    ["C8", "h@x.com", "", "", "", "", "", "31.02.1990", "", "", ""],         # 8 impossible date
    ["C9", "", "", "Nobody", "", "", "", "", "", "", ""],                    # 9 no identifier besides crm_id
    ["C10", "a@@b.com", "", "", "", "", "", "", "", "", "yesterday"],        # 10 two problems
]


def test_bad_rows_go_to_the_rejects_file_with_reasons(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "customers.csv", CUSTOMER_COLS, BAD_ROWS)
    s = import_file(storage.log, path, "customers", opts(), now=NOW)
    assert (s.read, s.imported, s.duplicates, s.rejected) == (10, 2, 1, 7)
    assert s.read == s.imported + s.already_present + s.duplicates + s.rejected
    assert s.rejects_path == tmp_path / "customers.rejects.csv"
    rejects = {int(r["row"]): r for r in read_rejects(s.rejects_path)}
    assert {n: r["reasons"] for n, r in rejects.items()} == {
        2: "invalid_email", 3: "invalid_phone", 4: "duplicate", 5: "missing_field", 6: "invalid_date",
        7: "invalid_date", 8: "invalid_date", 10: "invalid_email;invalid_date",
    }  # row 9 (crm_id only) is valid: crm_id is an identifier
    assert rejects[2]["email"] == "not-an-email" and rejects[4]["email"] == "dup@example.com"
    assert "before 1900" in rejects[6]["details"] and "future" in rejects[7]["details"]
    assert s.reasons["invalid_date"] == 4 and s.reasons["invalid_email"] == 2
    assert sorted(r["row_key"] for r in records(storage)) == ["C1", "C9"]


def test_rows_without_any_identifier_are_rejected(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "v.csv", ["ref", "first_name"], [["V1", "Ann"]])
    s = import_file(storage.log, path, "customers", opts(mapping={"row_key": "ref", "email": "first_name"}),
                    now=NOW)
    assert s.rejected == 1 and s.reasons == {"invalid_email": 1}
    path2 = write_csv(tmp_path / "o.csv", ["order_id", "crm_id", "email", "revenue"], [["O1", "", "", "5"]])
    s2 = import_file(storage.log, path2, "orders", opts(), now=NOW)
    assert s2.rejected == 1 and s2.reasons == {"missing_field": 1}
    assert read_rejects(s2.rejects_path)[0]["details"].startswith("needs an identifier: one of crm_id")


def test_bad_amounts_and_values(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "orders.csv", ["order_id", "crm_id", "revenue", "ordered_at"], [
        ["O1", "C1", "-5", "2026-01-01"],
        ["O2", "C1", "lots", "2026-01-01"],
        ["O3", "C1", "", "2026-01-01"],
        ["O4", "C1", "12,50", "2026-01-01"],
    ])
    s = import_file(storage.log, path, "orders", opts(), now=NOW, rejects_path=tmp_path / "out" / "rej.jsonl")
    assert (s.imported, s.rejected) == (1, 3)
    lines = [orjson.loads(x) for x in (tmp_path / "out" / "rej.jsonl").read_bytes().splitlines()]
    assert [(x["row"], x["reasons"]) for x in lines] == [
        (1, ["invalid_amount"]), (2, ["invalid_amount"]), (3, ["missing_field"])]
    assert lines[0]["data"]["revenue"] == "-5" and "negative" in lines[0]["details"][0]
    assert records(storage)[0]["revenue"] == 12.5
    cases = write_csv(tmp_path / "cases.csv", ["case_id", "crm_id", "status", "in_repair"],
                      [["K1", "C1", "pending", ""], ["K2", "C1", "closed", "maybe"]])
    s2 = import_file(storage.log, cases, "cases", opts(), now=NOW)
    assert s2.rejected == 2 and s2.reasons == {"invalid_value": 2}


def test_missing_required_column_fails_before_anything_is_stored(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "orders.csv", ["id", "crm_id", "total"], [["O1", "C1", "5"]])
    with pytest.raises(TaktError) as err:
        import_file(storage.log, path, "orders", opts(), now=NOW)
    assert "row_key (column 'order_id')" in str(err.value) and "revenue (column 'revenue')" in str(err.value)
    assert storage.log.count() == 0
    s = import_file(storage.log, path, "orders",
                    opts(mapping={"row_key": "id", "order_id": "id", "revenue": "total"}), now=NOW)
    assert s.imported == 1 and records(storage)[0]["order_id"] == "O1"


def test_mapping_to_an_absent_column_is_an_error(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", CUSTOMER_COLS, GOOD_CUSTOMERS)
    with pytest.raises(TaktError, match="mapped columns not in the file: email → 'E-Mail'"):
        import_file(storage.log, path, "customers", opts(mapping={"email": "E-Mail"}), now=NOW)
    with pytest.raises(TaktError, match="unknown customer field 'mail'"):
        import_file(storage.log, path, "customers", opts(mapping={"mail": "email"}), now=NOW)


def test_phone_default_region() -> None:
    assert normalize_phone("0151 23456789", None) is None
    assert normalize_phone("0151 23456789", "DE") == "+4915123456789"
    assert normalize_phone("+44 7700 900123", "DE") is None  # a UK number in the range reserved for drama
    assert normalize_phone("+1 650-253-0000", None) == "+16502530000"


@pytest.mark.parametrize("email,ok", [
    ("a@b.co", True), ("A.B+tag@Sub.Example.COM", True), ("a@b", False), ("a@b.c", False),
    ("a..b@c.de", False), (".a@c.de", False), ("a b@c.de", False), ("a@-c.de", False), ("a@c..de", False),
    ("@c.de", False), ("a@c.d3", False), ("anna.müller@gmx.de", True), ("x@bücher.de", True),
    ("a@b_c.de", False), ("x@xn--bcher-kva.de", True),
])
def test_email_check(email: str, ok: bool) -> None:
    assert (normalize_email(email) is not None) == ok


# ---- mappings ----
def test_map_flags_and_mapping_files(tmp_path: Path) -> None:
    assert parse_map_flags(["email=E-Mail", " crm_id = Kundennr "]) == {"email": "E-Mail", "crm_id": "Kundennr"}
    with pytest.raises(TaktError, match="FIELD=COLUMN"):
        parse_map_flags(["email"])
    toml = tmp_path / "m.toml"
    toml.write_text('[customers]\nemail = "E-Mail"\nrow_key = "Kundennr"\n[orders]\nrevenue = "Umsatz"\n')
    assert load_mapping_file(toml, "customers") == {"email": "E-Mail", "row_key": "Kundennr"}
    assert load_mapping_file(toml, "order") == {"revenue": "Umsatz"}
    with pytest.raises(TaktError, match="no table for cases"):
        load_mapping_file(toml, "cases")
    flat = tmp_path / "m.json"
    flat.write_text(json.dumps({"email": "E-Mail"}))
    assert load_mapping_file(flat, "products") == {"email": "E-Mail"}
    bad = tmp_path / "bad.toml"
    bad.write_text("email = ")
    with pytest.raises(TaktError, match="not a valid TOML mapping"):
        load_mapping_file(bad, "customers")


def test_cli_import_with_mapping_file_and_flags(tmp_path: Path) -> None:
    ws = init(tmp_path / "ws")
    path = write_csv(tmp_path / "kunden.csv", ["Kundennr", "E-Mail", "Telefon", "Vorname"],
                     [["K1", "ann@example.com", "0151 23456789", "Ann"], ["K2", "b@example.com", "", "Bo"],
                      ["K1", "again@example.com", "", "Ann"]])
    mapping = tmp_path / "kunden.toml"
    mapping.write_text('row_key = "Kundennr"\ncrm_id = "Kundennr"\nemail = "E-Mail"\nphone = "Telefon"\n')
    r = CliRunner().invoke(main, ["import", "customers", str(path), "-w", str(ws.path), "--mapping", str(mapping),
                                  "--map", "first_name=Vorname", "--default-region", "DE", "--no-progress",
                                  "--rejects", str(tmp_path / "rej.csv")])
    assert r.exit_code == 0, r.output
    assert "rows read: 3" in r.output and "imported:        2" in r.output and "duplicates:      1" in r.output
    with ws.open_storage() as storage:
        first = storage.log.read()[0].event.properties
    assert first["identifiers"] == {"crm_id": "K1", "email": "ann@example.com", "phone": "+4915123456789"}
    assert first["traits"] == {"first_name": "Ann"}
    assert [r["row"] for r in read_rejects(tmp_path / "rej.csv")] == ["3"]


def test_cli_reports_a_bad_file_clearly(tmp_path: Path) -> None:
    ws = init(tmp_path / "ws")
    r = CliRunner().invoke(main, ["import", "orders", str(tmp_path / "nope.csv"), "-w", str(ws.path)])
    assert r.exit_code == 2 and "nope.csv: no such file" in r.output


# ---- formats ----
ROWS = [
    {"crm_id": "C1", "email": "ann@example.com", "first_name": "Ann", "updated_at": "2026-02-01"},
    {"crm_id": "C2", "email": "broken", "first_name": "Bob", "updated_at": "2026-02-01"},
    {"crm_id": "C1", "email": "x@example.com", "first_name": "Dup", "updated_at": "2026-02-01"},
    {"crm_id": "C3", "email": "c@example.com", "first_name": "Cy", "updated_at": None},
]


def _write(fmt: str, path: Path) -> Path:
    if fmt == "csv":
        return write_csv(path.with_suffix(".csv"), list(ROWS[0]), [[r[k] or "" for k in ROWS[0]] for r in ROWS])
    if fmt == "parquet":
        table = pa.table({k: [r[k] for r in ROWS] for k in ROWS[0]})
        pq.write_table(table, path.with_suffix(".parquet"))
        return path.with_suffix(".parquet")
    p = path.with_suffix(".jsonl")
    p.write_bytes(b"".join(orjson.dumps({k: v for k, v in r.items() if v is not None}) + b"\n" for r in ROWS)
                  + b"{not json\n")
    return p


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_formats_give_the_same_events(storage: DuckDBStorage, tmp_path: Path, fmt: str) -> None:
    path = _write(fmt, tmp_path / "customers")
    s = import_file(storage.log, path, "customers", opts(), now=NOW)
    assert (s.imported, s.duplicates) == (2, 1)
    assert s.rejected == (2 if fmt == "jsonl" else 1)
    assert s.read == s.imported + s.duplicates + s.rejected
    got = [(r["row_key"], r["identifiers"]["email"], r["traits"]["first_name"]) for r in records(storage)]
    assert got == [("C1", "ann@example.com", "Ann"), ("C3", "c@example.com", "Cy")]
    assert [se.event.timestamp for se in storage.log.read()] == [datetime(2026, 2, 1, tzinfo=UTC), NOW]
    assert s.rejects_path is not None and s.rejects_path.exists()
    if fmt == "jsonl":
        lines = [orjson.loads(x) for x in s.rejects_path.read_bytes().splitlines()]
        assert [(x["row"], x["reasons"]) for x in lines] == [
            (2, ["invalid_email"]), (3, ["duplicate"]), (5, ["unreadable_row"])]


def test_same_message_ids_across_formats(tmp_path: Path) -> None:
    ids = []
    for fmt in ("csv", "parquet"):
        with DuckDBStorage(tmp_path / f"{fmt}.duckdb") as s:
            import_file(s.log, _write(fmt, tmp_path / fmt), "customers", opts(), now=NOW)
            ids.append([se.event.message_id for se in s.log.read()])
    assert ids[0] == ids[1] and len(set(ids[0])) == 2


def test_non_utf8_csv_fails_before_anything_is_stored(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("crm_id,email,first_name\nC1,a@b.de,Ann\nC2,b@c.de,J\xfcrgen\n".encode("latin-1"))
    with pytest.raises(TaktError, match=r"latin1.csv: line 3 \(byte \d+\) is not UTF-8"):
        import_file(storage.log, path, "customers", opts(), now=NOW)
    assert storage.log.count() == 0


def test_an_unparseable_csv_row_is_rejected_and_the_rest_imported(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("crm_id,email\nC1,a@b.de\nC2," + "x" * 200_000 + "\nC3,c@d.de\n", encoding="utf-8")
    s = import_file(storage.log, path, "customers", opts(), now=NOW)
    assert (s.read, s.imported, s.rejected) == (3, 2, 1) and s.reasons == {"unreadable_row": 1}
    (rej,) = read_rejects(s.rejects_path)
    assert rej["row"] == "2" and rej["reasons"] == "unreadable_row" and "field larger" in rej["details"]


def test_a_json_array_file_is_refused_clearly(storage: DuckDBStorage, tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    path.write_text(json.dumps([{"crm_id": "C1", "email": "a@b.de"}]))
    with pytest.raises(TaktError, match="holds a JSON array; takt reads JSON lines"):
        import_file(storage.log, path, "customers", opts(), now=NOW)
    assert storage.log.count() == 0


# ---- CSV injection (OWASP): a rejects file opened in a spreadsheet must not run formulas ----
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]


def test_rejects_csv_neutralizes_spreadsheet_formulas(storage: DuckDBStorage, tmp_path: Path) -> None:
    rows = [[f"C{i}", "not-an-email", "", payload, "", "", "", "", "", "", ""] for i, payload in enumerate(FORMULAS)]
    rows.append(["=CMD()", "bad@", "", "Ann", "", "", "", "", "", "", ""])  # in the row key (and in details)
    path = write_csv(tmp_path / "customers.csv", CUSTOMER_COLS, rows)
    s = import_file(storage.log, path, "customers", opts(), now=NOW)
    assert s.rejected == len(rows)
    rejects = read_rejects(s.rejects_path)
    assert [r["first_name"] for r in rejects[:len(FORMULAS)]] == ["'" + p for p in FORMULAS]
    for r in rejects:
        for value in r.values():
            assert not value or value[0] not in "=+-@\t\r", r
    assert rejects[-1]["crm_id"] == "'=CMD()"
    # harmless values are left alone
    assert rejects[0]["email"] == "not-an-email" and rejects[0]["crm_id"] == "C0"
