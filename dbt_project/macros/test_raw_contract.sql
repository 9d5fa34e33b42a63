{#- Generic tests for the raw layer contract (every source in _raw__sources.yml). Each returns the
    offending rows, so a failure in the Dagster UI names the table, the rule and the count.
    Column names are quoted: the contract has names such as `at`. -#}

{#- Money holds whole minor units; columns not listed in `signed` are never negative. -#}
{% test minor_units(model, columns, signed=[]) %}
select *
from {{ model }}
where {% for name in columns -%}
    {%- set c = adapter.quote(name) -%}
    ({{ c }} is not null and ({{ c }} <> floor({{ c }}){% if name not in signed %} or {{ c }} < 0{% endif %}))
    {%- if not loop.last %} or {% endif %}
{%- endfor %}
{% endtest %}

{#- No timestamp before `earliest` (a parsing or epoch-zero error); the columns in `happened`
    (when a row was created, settled, received) are also not after the run's as_of day plus
    `future_days` (clock skew and time zones). -#}
{% test timestamps_in_range(model, columns, happened=[], earliest='2000-01-01', future_days=2) %}
select *
from {{ model }}
where {% for name in columns -%}
    {%- set c = adapter.quote(name) -%}
    ({{ c }} is not null and cast({{ c }} as date) < cast('{{ earliest }}' as date))
    {%- if not loop.last %} or {% endif %}
{%- endfor %}
{%- for name in happened %}
    or ({{ adapter.quote(name) }} is not null
        and cast({{ adapter.quote(name) }} as date) > {{ days_after(as_of_date(), future_days) }})
{%- endfor %}
{% endtest %}

{#- Currency codes are three upper-case letters (ISO-4217 form). -#}
{% test currency_code(model, column_name) %}
select *
from {{ model }}
where {{ column_name }} is not null
  and (length({{ column_name }}) <> 3 or upper({{ column_name }}) <> {{ column_name }})
{% endtest %}
