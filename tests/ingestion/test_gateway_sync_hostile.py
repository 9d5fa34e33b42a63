"""Hostile gateway listings: malformed, duplicated and out-of-order objects from a real HTTP
server on 127.0.0.1 through the Stripe SDK. Bad objects are quarantined naming the field, the
rest land, and the next sync neither re-reads nor loses anything."""

from __future__ import annotations

import copy

import duckdb

from ingestion.gateway_sync import sync_gateway
from ingestion.gateways.retry import RetryPolicy
from ingestion.gateways.stripe import StripeConfig, StripeGateway
from tests.ingestion.gateway_worlds import T0, World, serving


def _pi(i: int, **over: object) -> dict:
    pi = {"id": f"pi_h{i}", "object": "payment_intent", "amount": 10_000 + i, "currency": "inr",
          "created": T0 + i, "status": "succeeded", "customer": "cus_h", "metadata": {}}  # fmt: skip
    pi.update(over)
    return pi


def test_bad_objects_are_quarantined_and_the_rest_land(tmp_path):
    good = [_pi(1), _pi(5), _pi(3)]  # out of creation order
    bad = [
        _pi(2, amount="100.00"),
        _pi(4, currency="rupees"),
        _pi(6, metadata={"attempt_number": "-1"}),
        _pi(7, status="teleported"),
        _pi(
            8,
            latest_charge={
                "id": "ch_x",
                "object": "charge",
                "amount": 1,
                "created": T0,
                "currency": "inr",
                "payment_intent": "pi_other",
            },
        ),
    ]
    world = World(objects={"payment_intents": good + bad + [copy.deepcopy(good[0])],
                           "customers": [], "events": []})  # fmt: skip
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with serving(world, "stripe") as server:
        gw = StripeGateway(StripeConfig("sk_h", api_base=server.url, retry=RetryPolicy(0)))
        first = sync_gateway(gw, "stripe", con)
        second = sync_gateway(gw, "stripe", con)
    landed = con.execute("select charge_id from raw.gateway_charges order by 1").fetchall()
    assert landed == [("pi_h1",), ("pi_h3",), ("pi_h5",)]  # the duplicate once
    quarantined = dict(
        con.execute("select object_id, field from raw.quarantine_gateway_objects").fetchall()
    )
    assert quarantined == {
        "pi_h2": "amount",
        "pi_h4": "currency",
        "pi_h6": "metadata.attempt_number",
        "pi_h7": "status",
        "pi_h8": "latest_charge.payment_intent",
    }
    reasons = [
        r for (r,) in con.execute("select reason from raw.quarantine_gateway_objects").fetchall()
    ]
    assert all("field" in r for r in reasons)
    assert first["quarantined"] == 5 and first["payments"] == 3
    assert second.get("quarantined", 0) == 0 and second["payments"] == 0
