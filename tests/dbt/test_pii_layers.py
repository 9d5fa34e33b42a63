"""#19 item 4: the layers analysts query (staging, intermediate, marts) carry a stable
pseudonymous customer_key, never a customer's name, email or address; those stay in the raw
copy and in restricted.customer_contacts."""

from __future__ import annotations

import hashlib
import os

PERSONAL_COLUMNS = {"email", "phone", "address_line", "city", "postal_code", "vpa", "contact"}
ANALYST_SCHEMAS = ("staging", "intermediate", "marts")
SALT = os.environ.get("PAYSIGHT_PSEUDONYM_SALT", "paysight-local")


def _text_columns(warehouse) -> list[tuple[str, str, str]]:
    frame = warehouse.query(
        "select table_schema, table_name, column_name from information_schema.columns "
        f"where table_schema in {ANALYST_SCHEMAS} and data_type = 'VARCHAR'"
    )
    return list(frame.itertuples(index=False, name=None))


def test_no_personal_column_or_value_reaches_the_analysts_layers(warehouse):
    assert warehouse.result.returncode == 0, warehouse.result.stdout[-3000:]
    columns = warehouse.query(
        "select table_schema, table_name, column_name from information_schema.columns "
        f"where table_schema in {ANALYST_SCHEMAS}"
    )
    leaked = columns[columns.column_name.isin(PERSONAL_COLUMNS)]
    assert leaked.empty, leaked.to_dict("records")
    customers = warehouse.query("select name, email, address_line from raw.ledger_customers")
    personal = {v for v in customers.to_numpy().ravel() if isinstance(v, str) and len(v) > 3}
    assert len(personal) >= 2 * len(customers)
    text = _text_columns(warehouse)
    assert text
    union = " union all ".join(
        f'select distinct cast("{c}" as varchar) as v from "{s}"."{t}"' for s, t, c in text
    )
    values = set(warehouse.query(f"select distinct v from ({union})").v.dropna())
    assert not (values & personal), sorted(values & personal)[:5]


def test_the_customer_key_is_the_salted_hash_of_the_id_and_joins_the_restricted_contacts(
    warehouse,
):
    dim = warehouse.query("select customer_id, customer_key from marts.dim_customers")
    assert len(dim) > 0
    for customer_id, key in dim.itertuples(index=False, name=None):
        expected = hashlib.md5(f"{SALT}:{customer_id}".encode()).hexdigest()
        assert key == expected, (customer_id, key)
    contacts = warehouse.query(
        "select c.customer_key, c.name, r.name as raw_name from restricted.customer_contacts c "
        "join raw.ledger_customers r on r.id = c.customer_id"
    )
    assert set(contacts.customer_key) == set(dim.customer_key)
    assert (contacts.name == contacts.raw_name).all()
