"""Warehouse at scale: N gateway charges through dbt (payments, reconciliation, MRR) against a
hand-written single DuckDB SQL script computing the same results (the floor).

    .venv/bin/python benchmarks/warehouse_scale.py --n 10000000 [--warehouse PATH] [--keep]

Both sides run under the same DuckDB settings (memory_limit from PAYSIGHT_DUCKDB_MEMORY_LIMIT,
default 3GB, insertion order not preserved). Prints wall and CPU seconds, their ratios, each
side's peak RSS (process tree, sampled, and the kernel's high-water mark) and the load average,
and checks that all four tables agree column by column.
Goal: ratio <= 1.5, peak memory <= 4 GiB, 10 million charges in under 3 minutes.

    .venv/bin/python benchmarks/warehouse_scale.py --n 200000 --engine spark

`--engine spark` also builds the same models with dbt-spark on a local Spark session
(`local[2]`, the `spark` target of profiles.yml) from the raw tables published as Parquet
(ingestion/raw_parquet.py, as the ingestion assets do), prints its figures next to DuckDB's
and checks Spark's tables against the floor too (numbers compared to 6 places: Spark types
the ratios as decimals).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil
import yaml

from ingestion.warehouse import connect

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_DIR = REPO_ROOT / "dbt_project"
AS_OF = "2025-12-31"
SLA_DAYS = 2
# The dbt profile's default (profiles.yml); both sides get the same budget.
DEFAULT_MEMORY_LIMIT = "3GB"


def create_raw(con: duckdb.DuckDBPyConnection) -> None:
    """Every raw table of the contract (the source YAML), empty."""
    doc = yaml.safe_load((DBT_DIR / "models" / "staging" / "_raw__sources.yml").read_text())
    con.execute("create schema if not exists raw")
    for t in doc["sources"][0]["tables"]:
        cols = ", ".join(f'"{c["name"]}" {c["data_type"]}' for c in t["columns"])
        con.execute(f"create table raw.{t['name']} ({cols})")


def generate(con: duckdb.DuckDBPyConnection, n: int) -> None:
    """N charges over 2025 with ~0.1% of each discrepancy, ledger attempts, bank lines, and
    n/100 subscriptions with a year of monthly/quarterly/yearly invoices."""
    con.execute(f"""
    insert into raw.gateway_charges by name
    select
        'ch_' || i as charge_id,
        ['simulated', 'stripe', 'razorpay'][1 + i % 3] as gateway,
        'cus_' || (i % 100000) as customer_id,
        'inv_' || (case when i % 100000 = 1 then i - 1 else i end) as invoice_id,
        10000 + (i * 7919) % 500000 as amount_minor,
        case when i % 1000 = 13 then 'USD' else 'INR' end as currency,
        case when i % 10 = 0 then 'failed' else 'succeeded' end as status,
        ['card', 'upi', 'netbanking', 'wallet'][1 + i % 4] as method,
        ['HDFC', 'ICICI', 'SBI', 'AXIS', 'okaxis', 'ybl', 'paytm'][1 + i % 7] as issuer,
        case when i % 10 = 0 then ['insufficient_funds', 'do_not_honor'][1 + i % 2] end
            as decline_code,
        1 as attempt_number,
        case when i % 10 = 0 then 0 else (10000 + (i * 7919) % 500000) * 2 // 100 end as fee_minor,
        case when i % 10 = 0 then 0 else (10000 + (i * 7919) % 500000) * 2 // 100 * 18 // 100 end
            as fee_tax_minor,
        timestamp '2025-01-01' + to_seconds(i % (364 * 86400)) as created_at,
        '{{}}' as raw_json
    from range({n}) as r(i)
    """)
    con.execute("""
    insert into raw.ledger_payment_attempts by name
    select
        row_number() over () as id, i as invoice_id, 1 as attempt_number,
        'k' || charge_id as idempotency_key, status, gateway, charge_id as gateway_payment_id,
        amount_minor + case when i % 1000 = 3 then 100 else 0 end as amount_minor,
        'INR' as currency, decline_code, created_at, created_at as finalized_at
    from (select *, cast(substr(charge_id, 4) as bigint) as i from raw.gateway_charges)
    where i % 1000 <> 7
    union all
    select 10000000000 + i, 10000000000 + i, 1, 'lg' || i, 'succeeded', 'stripe', 'lg_' || i,
           5000, 'INR', null, timestamp '2025-06-01', timestamp '2025-06-01'
    from range(greatest(1, (select count(*) from raw.gateway_charges) // 1000)) as r(i)
    """)
    con.execute(f"""
    insert into raw.bank_settlements by name
    select
        'setl_' || strftime(settled_at, '%Y%m%d') as settlement_id,
        'UTR' || strftime(settled_at, '%Y%m%d') as utr,
        charge_id as payment_id, gross_minor, fee_minor, fee_tax_minor as tax_minor,
        gross_minor - fee_minor - fee_tax_minor as net_minor, currency, settled_at,
        row_number() over () as line_number
    from (
        select charge_id, currency, created_at + interval 2 day as settled_at,
               amount_minor - case when i % 1000 = 17 then 1000 else 0 end as gross_minor,
               fee_minor + case when i % 1000 = 9 then 1 else 0 end as fee_minor, fee_tax_minor,
               i
        from (select *, cast(substr(charge_id, 4) as bigint) as i from raw.gateway_charges)
        where status = 'succeeded' and i % 1000 <> 5
          and created_at < timestamp '{AS_OF}' - interval 5 day
    ) as s
    cross join range(2) as dup(k)
    where k = 0 or i % 1000 = 11
    """)
    subs = max(n // 100, 10)
    con.execute("""
    insert into raw.ledger_plans by name
    select * from (values
        (1, 'starter', 1, 1, 'starter', 'month', 1, 0, 'flat', false, 'f1', true, timestamp '2024-01-01'),
        (2, 'pro', 1, 1, 'pro', 'month', 1, 0, 'flat', false, 'f2', true, timestamp '2024-01-01'),
        (3, 'team_q', 1, 1, 'team_q', 'quarter', 1, 0, 'flat', false, 'f3', true, timestamp '2024-01-01'),
        (4, 'pro_y', 1, 1, 'pro_y', 'year', 1, 0, 'flat', false, 'f4', true, timestamp '2024-01-01')
    ) as p(id, code, version, product_id, name, "interval", interval_count, trial_days,
           pricing_model, is_addon, fingerprint, is_current, created_at)
    """)
    # Subscription s: plan 1 + s % 4 (2 for the second half-year when s % 7 = 0: an upgrade),
    # starts on day s % 28 of January, churns after month s % 12 when s % 5 = 0, and comes
    # back in November when s % 35 = 0.
    con.execute(f"""
    create temp table periods as
    with subs as (
        select s, 1 + s % 4 as base_plan from range({subs}) as r(s)
    ),
    months as (
        select s, base_plan, k,
               case when s % 7 = 0 and k >= 6 and base_plan = 1 then 2 else base_plan end as plan_id
        from subs cross join range(12) as m(k)
    ),
    plan_len as (
        select *, case plan_id when 3 then 3 when 4 then 12 else 1 end as months
        from months
    )
    select
        s, plan_id, k,
        timestamp '2025-01-01' + to_days(cast(s % 28 as integer)) + to_months(cast(k as integer))
            as period_start,
        timestamp '2025-01-01' + to_days(cast(s % 28 as integer)) + to_months(cast(k + months as integer))
            as period_end,
        case plan_id when 1 then 99900 when 2 then 249900 when 3 then 600000 else 2400000 end
            as amount
    from plan_len
    where k % months = 0
      and not (s % 5 = 0 and k > s % 12 and not (s % 35 = 0 and k >= 10))
    """)
    con.execute("""
    insert into raw.ledger_invoices by name
    select row_number() over (order by s, k) as id, s as customer_id, s as subscription_id,
           'recurring' as kind, 'paid' as status, 'INR' as currency, period_start, period_end,
           period_start as issued_at, amount as subtotal_minor, 0 as discount_minor,
           amount as taxable_minor, amount * 9 // 100 as cgst_minor, amount * 9 // 100 as sgst_minor,
           0 as igst_minor, amount * 9 // 100 * 2 as tax_minor,
           amount + amount * 9 // 100 * 2 as total_minor, '29' as place_of_supply,
           'intra' as tax_regime, false as reverse_charge, period_start as created_at
    from periods
    """)
    con.execute("""
    insert into raw.ledger_invoice_lines by name
    select row_number() over (order by s, k) as id, row_number() over (order by s, k) as invoice_id,
           1 as position, 'recurring' as kind, 'plan' as description, plan_id, '998314' as sac,
           1 as quantity, amount as amount_minor, 0 as discount_minor, amount as taxable_minor,
           1800 as tax_rate_bp, amount * 9 // 100 as cgst_minor, amount * 9 // 100 as sgst_minor,
           0 as igst_minor, period_start, period_end
    from periods
    """)


# The floor: the same four tables in one hand-written DuckDB script, written from the marts'
# contract (docs/architecture.md) rather than from dbt's compiled SQL. It keeps every column and
# type dbt produces, so "same results" is checked on whole tables, not a few aggregates.
FLOOR_SQL = f"""
create schema if not exists floor;

-- Staging rules inline: real gateways report a missing fee or attempt number as 0 / 1; the
-- simulated gateway's values are taken as recorded. A charge without a gateway is dropped.
create or replace table floor.fct_payments as
select gateway || ':' || charge_id as payment_id, gateway, charge_id as gateway_payment_id,
       invoice_id, customer_id, method, issuer, status, amount_minor::bigint as amount_minor,
       upper(currency) as currency,
       (case when gateway = 'simulated' then fee_minor else coalesce(fee_minor, 0) end)::bigint
           as fee_minor,
       (case when gateway = 'simulated' then fee_tax_minor else coalesce(fee_tax_minor, 0) end)
           ::bigint as fee_tax_minor,
       decline_code,
       (case when gateway = 'simulated' then attempt_number else coalesce(attempt_number, 1)
        end)::integer as attempt_number,
       created_at::timestamp as created_at, settled_at::timestamp as settled_at, settlement_id
from raw.gateway_charges
where gateway is not null;

create or replace table floor.fct_reconciliation as
with ledger as (
    select gateway_payment_id, min(id::bigint) as ledger_payment_id,
           min(amount_minor::bigint) as amount_minor, min(upper(currency)) as currency,
           min(created_at::timestamp) as created_at, count(*) as n
    from raw.ledger_payment_attempts
    where status = 'succeeded' and gateway_payment_id is not null
    group by 1
),
gw as (
    select gateway_payment_id, gateway, amount_minor, currency, fee_minor, fee_tax_minor,
           created_at,
           case when invoice_id is null then 1 else row_number() over (
               partition by gateway, invoice_id order by created_at, gateway_payment_id) end as rk
    from floor.fct_payments
    where status = 'succeeded'
),
bank as (
    select payment_id as gateway_payment_id, min(settlement_id) as settlement_id,
           min(utr) as utr, min(upper(currency)) as currency, max(upper(currency)) as maxc,
           sum(gross_minor::bigint) as gross, sum(fee_minor::bigint) as fee,
           sum(tax_minor::bigint) as tax, sum(net_minor::bigint) as net,
           min(settled_at::timestamp) as settled_at, count(*) as n
    from raw.bank_settlements
    where gross_minor > 0
    group by 1
),
-- Indian bank working days (Sundays and the holiday seed off), numbered consecutively.
cal as (
    select d::date as day,
           sum(case when isodow(d) = 7 or h.holiday_date is not null then 0 else 1 end)
               over (order by d) as seq
    from range(timestamp '2024-01-01', timestamp '2028-01-01', interval 1 day) as r(d)
    left join staging.indian_bank_holidays as h on h.holiday_date = d::date
),
j as (
    select coalesce(l.gateway_payment_id, g.gateway_payment_id, b.gateway_payment_id) as k,
           l.ledger_payment_id, g.gateway, b.settlement_id, b.utr,
           l.amount_minor as la, g.amount_minor as ga, b.gross, g.fee_minor as gf, b.fee,
           g.fee_tax_minor as gt, b.tax, b.net, l.currency as lc, g.currency as gc,
           b.currency as bc, b.maxc, coalesce(l.n, 0) as ln, coalesce(b.n, 0) as bn,
           coalesce(g.rk, 1) as rk,
           coalesce(g.created_at, l.created_at, b.settled_at) as created_at, b.settled_at
    from ledger l
    full join gw g on l.gateway_payment_id = g.gateway_payment_id
    full join bank b on coalesce(l.gateway_payment_id, g.gateway_payment_id) = b.gateway_payment_id
)
select k as recon_key, ledger_payment_id, gateway, k as gateway_payment_id, settlement_id, utr,
    la as ledger_amount_minor, ga as gateway_amount_minor, gross as settled_amount_minor,
    gf as gateway_fee_minor, fee as settled_fee_minor, gt as gateway_fee_tax_minor,
    tax as settled_fee_tax_minor, coalesce(gc, lc, bc) as currency, created_at, settled_at,
    settled_at is not null as is_settled,
    case
        when bn > 1 or rk > 1 or ln > 1 then 'duplicate'
        when ledger_payment_id is not null and ga is null then 'missing_in_gateway'
        when ledger_payment_id is null then 'missing_in_ledger'
        when lc <> gc or bc <> gc or maxc <> bc then 'currency_mismatch'
        when la <> ga or gross <> ga or net <> gross - fee - tax then 'amount_mismatch'
        when fee <> gf or tax <> gt then 'fee_mismatch'
        when settled_at is null
             and (select seq from cal where day = date '{AS_OF}') > c.seq + {SLA_DAYS}
            then 'unsettled_overdue'
        else 'matched'
    end as status,
    date_diff('day', created_at::date, coalesce(settled_at::date, date '{AS_OF}')) as age_days
from j left join cal c on c.day = j.created_at::date;

-- MRR: a recurring line counts in every month whose end (as_of, for the running month) it
-- covers, at its taxable value per month of the plan's period (floor division; an unknown
-- interval counts as one month).
create or replace table floor.fct_mrr_movements as
with sm as (
    select m::date as month, i.subscription_id::bigint as subscription_id,
           i.customer_id::bigint as customer_id, upper(i.currency) as currency,
           sum(l.taxable_minor::bigint // coalesce(p.interval_count * case p."interval"
               when 'month' then 1 when 'quarter' then 3 when 'year' then 12 end, 1)::bigint)
               as mrr
    from raw.ledger_invoice_lines l
    join raw.ledger_invoices i on l.invoice_id = i.id
    left join raw.ledger_plans p on l.plan_id = p.id
    join range(timestamp '2024-01-01', timestamp '2028-01-01', interval 1 month) as r(m)
      on l.period_start < least(m + interval 1 month, timestamp '{AS_OF}')
      and l.period_end >= least(m + interval 1 month, timestamp '{AS_OF}')
    where l.kind = 'recurring' and i.status in ('open', 'paid', 'uncollectible')
      and i.subscription_id is not null
      and m <= date_trunc('month', date '{AS_OF}')
    group by all
),
mv as (
    select coalesce(c.month, (p.month + interval 1 month)::date) as month,
           coalesce(c.customer_id, p.customer_id) as customer_id,
           coalesce(c.subscription_id, p.subscription_id) as subscription_id,
           coalesce(c.currency, p.currency) as currency,
           coalesce(c.mrr, 0) as mrr_minor, coalesce(p.mrr, 0) as prior_mrr_minor,
           min(c.month) over (partition by coalesce(c.subscription_id, p.subscription_id))
               as first_month
    from sm c full join sm p
      on c.subscription_id = p.subscription_id and c.month = (p.month + interval 1 month)::date
)
select subscription_id::varchar || ':' || month::varchar as mrr_movement_key, month,
       customer_id, subscription_id, currency, mrr_minor, prior_mrr_minor,
       case
           when prior_mrr_minor = 0 and month = first_month then 'new'
           when prior_mrr_minor = 0 then 'reactivation'
           when mrr_minor = 0 then 'churn'
           when mrr_minor > prior_mrr_minor then 'expansion'
           when mrr_minor < prior_mrr_minor then 'contraction'
           else 'unchanged'
       end as movement
from mv
where month <= date_trunc('month', date '{AS_OF}');

create or replace table floor.mrr_monthly as
with logos as (
    select month, currency, sum((mrr > 0)::int) as active, sum((prior > 0)::int) as prior_active,
           sum((prior > 0 and mrr = 0)::int) as churned
    from (select month, currency, customer_id, sum(mrr_minor) as mrr,
                 sum(prior_mrr_minor) as prior
          from floor.fct_mrr_movements group by all)
    group by all
),
money as (
    select month, currency, sum(mrr_minor) as mrr, sum(prior_mrr_minor) as prior,
           sum(case when movement = 'new' then mrr_minor else 0 end) as new,
           sum(case when movement = 'expansion' then mrr_minor - prior_mrr_minor else 0 end)
               as expansion,
           sum(case when movement = 'contraction' then prior_mrr_minor - mrr_minor else 0 end)
               as contraction,
           sum(case when movement = 'churn' then prior_mrr_minor else 0 end) as churn,
           sum(case when movement = 'reactivation' then mrr_minor else 0 end) as reactivation
    from floor.fct_mrr_movements
    group by all
)
select month, currency, mrr as mrr_minor, prior as prior_mrr_minor, new as new_minor,
       expansion as expansion_minor, contraction as contraction_minor, churn as churn_minor,
       reactivation as reactivation_minor, active as active_customers,
       churned as churned_customers, mrr * 12 as arr_minor,
       case when prior = 0 then null else (prior + expansion - contraction - churn)::decimal(18, 6)
            / prior::decimal(18, 6) end as nrr,
       case when prior = 0 then null else (prior - contraction - churn)::decimal(18, 6)
            / prior::decimal(18, 6) end as grr,
       case when prior_active = 0 then null else churned::decimal(18, 6)
            / prior_active::decimal(18, 6) end as logo_churn_rate
from money join logos using (month, currency);
"""

FLOOR_TABLES = ("fct_payments", "fct_reconciliation", "fct_mrr_movements", "mrr_monthly")


def duckdb_settings(memory_limit: str) -> dict[str, str]:
    """The DuckDB settings of the dbt profile (profiles.yml), applied to the floor as well so
    both sides run under the same memory budget."""
    settings = {"memory_limit": memory_limit, "preserve_insertion_order": "false"}
    if os.environ.get("PAYSIGHT_DUCKDB_TEMP_DIRECTORY"):
        settings["temp_directory"] = os.environ["PAYSIGHT_DUCKDB_TEMP_DIRECTORY"]
    return settings


@dataclass
class Measured:
    seconds: float
    peak_rss: int  # bytes: the larger of the sampled process-tree RSS and the kernel's maxrss
    cpu_seconds: float  # user + system, a figure that survives a loaded machine better
    output: str


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.Error):  # a child that just exited
            total += p.memory_info().rss
    return total


def run_measured(cmd: list[str], env: dict[str, str]) -> Measured:
    """Run a command; wall time and peak memory of its whole process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            ps = psutil.Process(proc.pid)
            while not done.is_set():
                peak = max(peak, _tree_rss(ps))
                done.wait(0.02)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read() if proc.stdout else ""
    # wait4 reaps the child and reports its kernel high-water mark (ru_maxrss, KiB), which
    # catches a spike shorter than the sampling interval.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-4000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, max(peak, usage.ru_maxrss * 1024), cpu, out[-2000:])


def dbt_cmd(args: list[str], target: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "dbt"),
        *args,
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--target-path",
        str(target),
        "--vars",
        f"{{as_of: '{AS_OF}', settlement_sla_days: {SLA_DAYS}}}",
    ]


def fingerprint(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, rounded: bool = False
) -> dict[str, object]:
    """Row count and an order-independent hash sum per column (values compared as text, so a
    HUGEINT sum and a BIGINT with the same value agree). ``rounded``: fractional numbers to
    6 places first (a DuckDB double and a Spark decimal of the same ratio then agree)."""
    types = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ?"
        " and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    cols = [c for c, _ in types]

    def text(column: str, kind: str) -> str:
        if rounded and (kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL")):
            return f'cast(round(cast("{column}" as double), 6) as varchar)'
        return f'cast("{column}" as varchar)'

    sums = ", ".join(f"sum(hash({text(c, k)})::hugeint)" for c, k in types)
    row = con.execute(f"select count(*), {sums} from {schema}.{table}").fetchone()
    return {"rows": row[0], **dict(zip(cols, row[1:], strict=True))}


def compare(db: Path, tables_dir: Path | None = None) -> list[str]:
    """Differences between dbt's marts (Spark's, with ``tables_dir``) and the floor's tables
    (empty when they agree)."""
    con = connect(db, read_only=True, tables_dir=tables_dir)
    rounded = tables_dir is not None
    problems = []
    for table in FLOOR_TABLES:
        got = fingerprint(con, "marts", table, rounded)
        want = fingerprint(con, "floor", table, rounded)
        if got.keys() != want.keys():
            problems.append(f"{table}: columns dbt {list(got)} != floor {list(want)}")
            continue
        differ = [k for k in got if got[k] != want[k]]
        if differ:
            problems.append(f"{table}: differs in {differ} (rows {got['rows']} vs {want['rows']})")
    statuses = dict(
        con.execute("select status, count(*) from marts.fct_reconciliation group by 1").fetchall()
    )
    con.close()
    print("reconciliation statuses:", statuses)
    return problems


def slowest_models(target: Path, k: int = 5) -> str:
    results = json.loads((target / "run_results.json").read_text())
    rows = sorted(results["results"], key=lambda r: -r["execution_time"])[:k]
    models = ", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f}s" for r in rows)
    return f"dbt's own elapsed {results['elapsed_time']:.1f} s; slowest: {models}"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_spark(
    db: Path, tmp: Path, env: dict[str, str], select: str, duck: Measured, floor: Measured
) -> list[str]:
    """The same models on Spark, from the raw tables published as Parquet; returns problems."""
    from ingestion.raw_parquet import publish
    from orchestration.lib.dbt import raw_contract

    spark_dir = tmp / "spark"
    t0 = time.perf_counter()
    con = connect(db, read_only=True)
    publish(con, spark_dir / "raw", raw_contract(), raw_contract())
    con.close()
    print(f"published the raw tables as Parquet in {time.perf_counter() - t0:.1f}s")
    spark_env = {**env, "PAYSIGHT_DBT_TARGET": "spark", "PAYSIGHT_SPARK_DIR": str(spark_dir)}
    target = tmp / "target-spark"
    run_measured(dbt_cmd(["seed"], target), spark_env)  # setup, as for DuckDB
    spark = run_measured(dbt_cmd(["run", "--select", *select.split()], target), spark_env)
    gib = 1024**3
    print(f"{'engine':<18} {'wall':>12}  {'CPU':>10}   peak RSS   (same data, same models)")
    for name, m in (("DuckDB dbt run", duck), ("Spark dbt run", spark), ("DuckDB floor", floor)):
        print(
            f"{name:<18} {m.seconds:>10.1f} s  {m.cpu_seconds:>8.1f} s   {m.peak_rss / gib:.2f} GiB"
        )
    print(f"  Spark: {slowest_models(target)}")
    print(f"ratio Spark / DuckDB {spark.seconds / duck.seconds:.2f} wall (local[2], 2 cores)")
    problems = compare(db, spark_dir / "warehouse")
    print(
        "Spark agrees with the floor" if not problems else "SPARK DIFFERS:\n" + "\n".join(problems)
    )
    return problems


FLOOR_RUNNER = (
    "import json, sys; from ingestion.warehouse import connect; "
    "con = connect(sys.argv[1], config=json.loads(sys.argv[2])); "
    "con.execute(sys.argv[3]); con.close()"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="gateway charges to write")
    parser.add_argument("--keep", action="store_true", help="keep the temporary warehouse")
    parser.add_argument(
        "--warehouse",
        type=Path,
        help="reuse this warehouse file (raw tables are generated only when it does not exist)",
    )
    parser.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="spark: also build the models on a local Spark session and print it beside DuckDB",
    )
    parser.add_argument(
        "--memory-limit",
        default=os.environ.get("PAYSIGHT_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
        help="DuckDB memory_limit for both sides (PAYSIGHT_DUCKDB_MEMORY_LIMIT)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="paysight-scale-"))
    try:
        db = args.warehouse or tmp / "warehouse.duckdb"
        env = {
            **os.environ,
            "PAYSIGHT_WAREHOUSE_PATH": str(db),
            "PAYSIGHT_DBT_TARGET": "dev",
            "PAYSIGHT_DUCKDB_MEMORY_LIMIT": args.memory_limit,
        }

        t0 = time.perf_counter()
        fresh = not db.exists()
        con = connect(db)
        if fresh:
            create_raw(con)
            generate(con, args.n)
        rows = con.execute("select count(*) from raw.gateway_charges").fetchone()[0]
        lines = con.execute("select count(*) from raw.ledger_invoice_lines").fetchone()[0]
        con.close()
        print(
            f"{'wrote' if fresh else 'reusing'} {rows:,} charges and {lines:,} invoice lines in "
            f"{time.perf_counter() - t0:.1f}s into {db}"
        )
        # Setup, not timed: the holiday seed both sides read.
        run_measured(dbt_cmd(["seed"], tmp / "target"), env)

        load_before = loadavg()
        select = "+fct_payments +fct_reconciliation +mrr_monthly"
        dbt = run_measured(dbt_cmd(["run", "--select", *select.split()], tmp / "target"), env)
        settings = json.dumps(duckdb_settings(args.memory_limit))
        floor = run_measured(
            [sys.executable, "-c", FLOOR_RUNNER, str(db), settings, FLOOR_SQL], env
        )
        load_after = loadavg()
        problems = compare(db)
        gib = 1024**3
        ratio = dbt.seconds / floor.seconds
        peak = max(dbt.peak_rss, floor.peak_rss)
        print(
            f"charges            {rows:>14,}   DuckDB memory_limit {args.memory_limit} (both sides)"
        )
        for name, m in (("dbt run", dbt), ("floor (1 script)", floor)):
            print(
                f"{name:<18} {m.seconds:>10.1f} s wall  {m.cpu_seconds:>8.1f} s CPU"
                f"   peak RSS {m.peak_rss / gib:.2f} GiB"
            )
            if m is dbt:
                print(f"  {slowest_models(tmp / 'target')}")
        print(
            f"ratio dbt / floor  {ratio:>10.2f} wall  {dbt.cpu_seconds / floor.cpu_seconds:>8.2f} CPU"
            "   (goal <= 1.5)"
        )
        print(f"load average       before {load_before}, after {load_after} (2 cores)")
        print(
            f"goals: ratio {'OK' if ratio <= 1.5 else 'MISSED'}, memory "
            f"{'OK' if peak <= 4 * gib else 'MISSED'}, time "
            f"{'OK' if dbt.seconds <= 180 else 'MISSED'} (10M goal 180 s)"
        )
        print("results agree" if not problems else "RESULTS DIFFER:\n" + "\n".join(problems))
        if args.engine == "spark":
            problems += run_spark(db, tmp, env, select, dbt, floor)
    finally:
        # A failed command exits here too; the temporary warehouse (GBs at 10M) goes.
        if not args.keep:
            shutil.rmtree(tmp)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
