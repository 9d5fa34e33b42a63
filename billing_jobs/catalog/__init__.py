"""The product catalog: version-controlled YAML loaded into the ledger as immutable versions.

A changed plan or price becomes a new version; subscriptions keep pointing at theirs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, insert, select, update

from billing_jobs.catalog.pricing import PricingModel, Tier
from billing_jobs.errors import CatalogError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.money import Money, MoneyError
from billing_jobs.periods import Interval, require_aware
from billing_jobs.tax.gst import RATE_TABLE, validate_gstin

DEMO_CATALOG = Path(__file__).resolve().parent / "demo_india_saas.yaml"


@dataclass(frozen=True)
class ProductSpec:
    code: str
    name: str
    sac: str


@dataclass(frozen=True)
class PriceSpec:
    currency: str
    unit_minor: int | None
    tiers: tuple[Tier, ...] = ()


@dataclass(frozen=True)
class PlanSpec:
    code: str
    product: str
    name: str
    interval: str
    interval_count: int
    trial_days: int
    pricing_model: str
    is_addon: bool
    prices: tuple[PriceSpec, ...]


@dataclass(frozen=True)
class CouponSpec:
    code: str
    percent_off_bp: int | None
    amount_off_minor: int | None
    currency: str | None
    duration: str
    duration_in_periods: int | None


@dataclass(frozen=True)
class CatalogSpec:
    supplier_gstin: str
    supplier_name: str
    invoice_prefix: str
    products: tuple[ProductSpec, ...]
    plans: tuple[PlanSpec, ...]
    coupons: tuple[CouponSpec, ...]
    # The supplier's address as printed on every tax document (Rule 46(a)).
    supplier_address: str = ""
    supplier_city: str = ""
    supplier_postal_code: str = ""


@dataclass
class CatalogLoadResult:
    """What a load changed: codes that got a new version, and unchanged ones."""

    new_product_versions: list[str] = field(default_factory=list)
    new_plan_versions: list[str] = field(default_factory=list)
    new_coupons: list[str] = field(default_factory=list)
    unchanged: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The fields each part of a catalog may have. An unknown field is refused rather than
# ignored: YAML splits an unquoted flow value at a comma (`name: Growth (monthly, per seat)`
# becomes the name "Growth (monthly" and a field "per seat)"), and that must not load.
FIELDS = {
    "catalog": {"supplier", "invoice_prefix", "products", "plans", "coupons"},
    "supplier": {"legal_name", "gstin", "address_line", "city", "postal_code"},
    "product": {"code", "name", "sac"},
    "plan": {"code", "product", "name", "interval", "interval_count", "trial_days", "pricing",
             "addon", "prices"},
    "tier": {"up_to", "unit", "flat"},
    "coupon": {"code", "percent_off", "amount_off", "currency", "duration",
               "duration_in_periods"},
}  # fmt: skip
_BRACKETS = {")": "(", "]": "[", "}": "{"}


def _known(d: Any, kind: str, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise CatalogError(f"{where}: expected a mapping of fields, got {d!r}")
    unknown = [k for k in d if k not in FIELDS[kind]]
    if unknown:
        raise CatalogError(
            f"{where}: unknown field {str(unknown[0])!r} (allowed: {', '.join(sorted(FIELDS[kind]))})"
            "; a comma, colon or # inside an unquoted value splits it: quote the value, "
            'e.g. name: "Growth (monthly, per seat)"'
        )
    return d


def _text(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    """A text field exactly as written: YAML must not have read it as a number, a boolean,
    a date or null (`name: yes`, `sac: 0998`, `code: 2025-01-01` are refused: quote them)."""
    if key not in d or d[key] is None:
        if default is not None:
            return default
        raise CatalogError(f"{where}: missing required field {key!r}")
    value = d[key]
    if not isinstance(value, str):
        raise CatalogError(
            f"{where}: {key} {value!r} was read as {type(value).__name__}, not text; quote it"
        )
    if not value.strip() and default is None:
        raise CatalogError(f"{where}: missing required field {key!r}")
    return value


def _display_name(d: Mapping[str, Any], where: str, default: str) -> str:
    name = _text(d, "name", where, default)
    stack: list[str] = []
    for ch in name:
        if ch in "([{":
            stack.append(ch)
        elif ch in _BRACKETS and (not stack or stack.pop() != _BRACKETS[ch]):
            stack.append("unbalanced")
            break
    if stack:
        raise CatalogError(
            f"{where}: name {name!r} has unbalanced brackets; if it was cut at a comma, quote it"
        )
    return name


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d or d[key] in (None, ""):
        raise CatalogError(f"{where}: missing required field {key!r}")
    return d[key]


def _minor(value: Any, currency: str, where: str) -> int:
    if isinstance(value, float):
        raise CatalogError(f"{where}: write amounts as quoted strings ('999.00'), not floats")
    try:
        return Money.of(str(value), currency).amount_minor
    except MoneyError as exc:
        raise CatalogError(f"{where}: {exc}") from exc


def parse_catalog(doc: Mapping[str, Any]) -> CatalogSpec:
    """Validate a catalog document (already parsed YAML) into specs."""
    if not isinstance(doc, Mapping):
        raise CatalogError("catalog must be a mapping with supplier, products, plans, coupons")
    _known(doc, "catalog", "catalog")
    supplier = _known(_need(doc, "supplier", "catalog"), "supplier", "supplier")
    try:
        gstin = validate_gstin(_need(supplier, "gstin", "supplier"))
    except CatalogError:
        raise
    except ValueError as exc:
        raise CatalogError(f"supplier: {exc}") from exc
    products = _products(doc.get("products") or [])
    plans = _plans(doc.get("plans") or [], {p.code for p in products})
    return CatalogSpec(
        gstin,
        _text(supplier, "legal_name", "supplier", ""),
        _text(doc, "invoice_prefix", "catalog", "INV"),
        products,
        plans,
        _coupons(doc.get("coupons") or []),
        _text(supplier, "address_line", "supplier", ""),
        _text(supplier, "city", "supplier", ""),
        _text(supplier, "postal_code", "supplier", ""),
    )


def _products(items: Any) -> tuple[ProductSpec, ...]:
    products = []
    for i, p in enumerate(items):
        where = f"products[{i}]"
        _known(p, "product", where)
        code = _text(p, "code", where)
        where = f"product {code!r}"
        sac = _text(p, "sac", where)
        if sac not in RATE_TABLE:
            raise CatalogError(f"{where}: SAC/HSN {sac!r} has no GST rate in the rate table")
        products.append(ProductSpec(code, _display_name(p, where, ""), sac))
        if not products[-1].name.strip():
            raise CatalogError(f"{where}: missing required field 'name'")
    if len({p.code for p in products}) != len(products):
        raise CatalogError("products: duplicate product codes")
    return tuple(products)


def _plans(items: Any, codes: set[str]) -> tuple[PlanSpec, ...]:
    plans = []
    for i, p in enumerate(items):
        where = f"plans[{i}]"
        _known(p, "plan", where)
        code = _text(p, "code", where)
        where = f"plan {code!r}"
        product = _text(p, "product", where)
        if product not in codes:
            raise CatalogError(f"{where}: unknown product {product!r}")
        try:
            interval = Interval(_need(p, "interval", where)).value
            model = PricingModel(p.get("pricing", "per_unit")).value
        except ValueError as exc:
            raise CatalogError(f"{where}: {exc}") from exc
        count = p.get("interval_count", 1)
        trial = p.get("trial_days", 0)
        if not isinstance(count, int) or count <= 0:
            raise CatalogError(f"{where}: interval_count must be a positive integer")
        if not isinstance(trial, int) or trial < 0:
            raise CatalogError(f"{where}: trial_days must be a non-negative integer")
        prices = []
        for cur, spec in (_need(p, "prices", where) or {}).items():
            pwhere = f"{where} price {cur}"
            if model == "per_unit":
                prices.append(PriceSpec(str(cur).upper(), _minor(spec, cur, pwhere)))
            else:
                if not isinstance(spec, list) or not spec:
                    raise CatalogError(f"{pwhere}: {model} pricing needs a list of tiers")
                tiers, last = [], 0
                for j, t in enumerate(spec):
                    _known(t, "tier", f"{pwhere} tier {j}")
                    up_to = t.get("up_to")
                    if up_to is not None and (not isinstance(up_to, int) or up_to <= last):
                        raise CatalogError(f"{pwhere} tier {j}: up_to must increase")
                    if up_to is None and j != len(spec) - 1:
                        raise CatalogError(f"{pwhere}: only the last tier may be unbounded")
                    tiers.append(
                        Tier(
                            up_to,
                            _minor(t.get("unit", "0"), cur, pwhere),
                            _minor(t.get("flat", "0"), cur, pwhere),
                        )
                    )
                    last = up_to or last
                if tiers[-1].up_to is not None:
                    raise CatalogError(f"{pwhere}: the last tier must have up_to: null")
                prices.append(PriceSpec(str(cur).upper(), None, tuple(tiers)))
        if not prices:
            raise CatalogError(f"{where}: needs at least one price")
        plans.append(
            PlanSpec(
                code,
                product,
                _display_name(p, where, code),
                interval,
                count,
                trial,
                model,
                bool(p.get("addon", False)),
                tuple(sorted(prices, key=lambda x: x.currency)),
            )
        )
    if len({p.code for p in plans}) != len(plans):
        raise CatalogError("plans: duplicate plan codes")
    return tuple(plans)


def _coupons(items: Any) -> tuple[CouponSpec, ...]:
    coupons = []
    for i, c in enumerate(items):
        where = f"coupons[{i}]"
        _known(c, "coupon", where)
        code = _text(c, "code", where)
        where = f"coupon {code!r}"
        duration = _need(c, "duration", where)
        if duration not in ("once", "repeating", "forever"):
            raise CatalogError(f"{where}: duration must be once, repeating or forever")
        periods = c.get("duration_in_periods")
        if duration == "repeating" and (not isinstance(periods, int) or periods <= 0):
            raise CatalogError(f"{where}: repeating coupons need duration_in_periods > 0")
        pct, amt, cur = c.get("percent_off"), c.get("amount_off"), c.get("currency")
        if (pct is None) == (amt is None):
            raise CatalogError(f"{where}: give exactly one of percent_off or amount_off")
        bp = None
        if pct is not None:
            try:
                bp_dec = Money.of(str(pct), "INR").amount_minor  # percent with 2 decimals
            except MoneyError as exc:
                raise CatalogError(f"{where}: bad percent_off {pct!r}") from exc
            if not 0 < bp_dec <= 10000:
                raise CatalogError(f"{where}: percent_off must be in (0, 100]")
            bp = bp_dec
        amount = None
        if amt is not None:
            if not cur:
                raise CatalogError(f"{where}: amount_off needs a currency")
            amount = _minor(amt, cur, where)
            cur = str(cur).upper()
        coupons.append(
            CouponSpec(code, bp, amount, cur if amount is not None else None, duration, periods)
        )
    return tuple(coupons)


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise CatalogError(
                    f"line {key_node.start_mark.line + 1}: field {key!r} is given twice"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_catalog_file(path: str | Path) -> CatalogSpec:
    """Parse and validate a catalog YAML file (strictly: no duplicate or unknown fields, text
    fields must be text; see FIELDS)."""
    try:
        doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_StrictLoader)
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the catalog: {exc.strerror}") from None
    try:
        return parse_catalog(doc)
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from exc


def _current(conn: Connection, table: Any, code: str) -> Any:
    return conn.execute(
        select(table).where(table.c.code == code).order_by(table.c.version.desc()).limit(1)
    ).first()


def _version(conn: Connection, table: Any, code: str, fp: str, values: dict, now: datetime):
    """Insert a new version of `code` unless the newest one has the same fingerprint."""
    cur = _current(conn, table, code)
    if cur is not None and cur.fingerprint == fp:
        return cur.id, False
    if cur is not None:
        conn.execute(update(table).where(table.c.code == code).values(is_current=False))
    version = 1 if cur is None else cur.version + 1
    row = dict(values, code=code, version=version, fingerprint=fp, is_current=True, created_at=now)
    new_id = conn.execute(insert(table).returning(table.c.id), row).scalar_one()
    return new_id, True


def _save_supplier(conn: Connection, spec: CatalogSpec) -> None:
    """The supplier's details and the invoice prefix, as ledger settings."""
    for key, value in (
        ("supplier_gstin", spec.supplier_gstin),
        ("supplier_name", spec.supplier_name),
        ("invoice_prefix", spec.invoice_prefix),
        ("supplier_address", spec.supplier_address),
        ("supplier_city", spec.supplier_city),
        ("supplier_postal_code", spec.supplier_postal_code),
    ):
        if conn.execute(select(s.settings.c.key).where(s.settings.c.key == key)).first():
            conn.execute(update(s.settings).where(s.settings.c.key == key).values(value=value))
        else:
            conn.execute(insert(s.settings).values(key=key, value=value))


def load_catalog(
    target: Target, source: str | Path | Mapping[str, Any] | CatalogSpec, *, now: datetime
) -> CatalogLoadResult:
    """Load a catalog (file path, parsed mapping or spec) into the ledger in one transaction."""
    now = require_aware(now, "now")
    if isinstance(source, CatalogSpec):
        spec = source
    elif isinstance(source, Mapping):
        spec = parse_catalog(source)
    else:
        spec = read_catalog_file(source)
    result = CatalogLoadResult()
    with write_conn(target) as conn:
        _save_supplier(conn, spec)
        product_ids: dict[str, int] = {}
        product_fps: dict[str, str] = {}
        for p in spec.products:
            fp = _fingerprint(asdict(p))
            product_ids[p.code], new = _version(
                conn, s.products, p.code, fp, {"name": p.name, "sac": p.sac}, now
            )
            product_fps[p.code] = fp
            (result.new_product_versions.append(p.code) if new else None)
            result.unchanged += 0 if new else 1
        for plan in spec.plans:
            body = asdict(plan)
            body["product_fp"] = product_fps[plan.product]
            fp = _fingerprint(body)
            values = {
                "product_id": product_ids[plan.product],
                "name": plan.name,
                "interval": plan.interval,
                "interval_count": plan.interval_count,
                "trial_days": plan.trial_days,
                "pricing_model": plan.pricing_model,
                "is_addon": plan.is_addon,
            }
            plan_id, new = _version(conn, s.plans, plan.code, fp, values, now)
            if new:
                result.new_plan_versions.append(plan.code)
                conn.execute(
                    insert(s.prices),
                    [
                        {
                            "plan_id": plan_id,
                            "currency": pr.currency,
                            "unit_amount_minor": pr.unit_minor,
                            "tiers_json": json.dumps([asdict(t) for t in pr.tiers])
                            if pr.tiers
                            else None,
                        }
                        for pr in plan.prices
                    ],
                )
            else:
                result.unchanged += 1
        for c in spec.coupons:
            fp = _fingerprint(asdict(c))
            row = conn.execute(select(s.coupons).where(s.coupons.c.code == c.code)).first()
            if row is None:
                values = asdict(c) | {"fingerprint": fp, "created_at": now}
                conn.execute(insert(s.coupons).values(**values))
                result.new_coupons.append(c.code)
            elif row.fingerprint != fp:
                raise CatalogError(
                    f"coupon {c.code!r} already exists with different terms; coupons are "
                    "immutable, give the new terms a new code"
                )
            else:
                result.unchanged += 1
    return result
