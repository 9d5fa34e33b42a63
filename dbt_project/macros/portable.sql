{#- Adapter-dispatched helpers so models stay portable (DuckDB default, Spark for scale). -#}

{#- The "today" of a run: var('as_of') (YYYY-MM-DD) pins it for replays and tests. -#}
{% macro as_of_date() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of -%}cast('{{ as_of }}' as date){%- else -%}current_date{%- endif -%}
{%- endmacro %}

{#- Integer division of non-negative integers (money stays integer). -#}
{% macro int_div(numerator, denominator) -%}
    {{ return(adapter.dispatch('int_div', 'paysight')(numerator, denominator)) }}
{%- endmacro %}
{% macro default__int_div(numerator, denominator) -%}
    cast(floor(cast({{ numerator }} as decimal(38, 6)) / ({{ denominator }})) as bigint)
{%- endmacro %}
{% macro duckdb__int_div(numerator, denominator) -%}
    (cast({{ numerator }} as bigint) // cast({{ denominator }} as bigint))
{%- endmacro %}
{% macro spark__int_div(numerator, denominator) -%}
    (cast({{ numerator }} as bigint) div cast({{ denominator }} as bigint))
{%- endmacro %}

{#- ISO day of week: Monday = 1 ... Sunday = 7. -#}
{% macro iso_day_of_week(date_expr) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'paysight')(date_expr)) }}
{%- endmacro %}
{% macro default__iso_day_of_week(date_expr) -%}
    cast(extract(isodow from {{ date_expr }}) as integer)
{%- endmacro %}
{% macro spark__iso_day_of_week(date_expr) -%}
    (((dayofweek({{ date_expr }}) + 5) % 7) + 1)
{%- endmacro %}

{#- A ratio as a decimal, null when the denominator is zero. -#}
{% macro safe_ratio(numerator, denominator) -%}
    case when ({{ denominator }}) = 0 then null
         else cast({{ numerator }} as decimal(18, 6)) / cast({{ denominator }} as decimal(18, 6)) end
{%- endmacro %}

{#- Calendar month start as a date. -#}
{% macro month_of(ts_expr) -%}
    cast({{ dbt.date_trunc('month', ts_expr) }} as date)
{%- endmacro %}

{#- A top-level field of a JSON text column, as text (null when absent). -#}
{% macro json_text(column, key) -%}
    {{ return(adapter.dispatch('json_text', 'paysight')(column, key)) }}
{%- endmacro %}
{% macro default__json_text(column, key) -%}
    json_value({{ column }}, '$.{{ key }}')
{%- endmacro %}
{% macro duckdb__json_text(column, key) -%}
    json_extract_string({{ column }}, '$.{{ key }}')
{%- endmacro %}
{% macro spark__json_text(column, key) -%}
    get_json_object({{ column }}, '$.{{ key }}')
{%- endmacro %}

{#- An ISO-8601 UTC instant written by Python (2025-01-05T06:12:00[.ffffff]+00:00) as a
    timestamp to the second. -#}
{% macro iso_timestamp(text_expr) -%}
    cast(replace(substring({{ text_expr }}, 1, 19), 'T', ' ') as timestamp)
{%- endmacro %}

{#- A date `days` days after `date_expr`, as a date. -#}
{% macro days_after(date_expr, days) -%}
    {{ return(adapter.dispatch('days_after', 'paysight')(date_expr, days)) }}
{%- endmacro %}
{% macro default__days_after(date_expr, days) -%}
    cast(({{ date_expr }}) + interval '{{ days }}' day as date)
{%- endmacro %}
{% macro spark__days_after(date_expr, days) -%}
    date_add({{ date_expr }}, {{ days }})
{%- endmacro %}

{#- A stable pseudonymous customer key: md5 of a salt and the ledger id. Set
    PAYSIGHT_PSEUDONYM_SALT to a secret in production (the default makes the key reproducible
    by anyone who knows the ids); the same salt gives the same key on every build. -#}
{% macro customer_key(id_expr) -%}
    {%- set salt = env_var('PAYSIGHT_PSEUDONYM_SALT', 'paysight-local') | replace("'", "''") -%}
    md5('{{ salt }}:' || cast({{ id_expr }} as {{ dbt.type_string() }}))
{%- endmacro %}

{#- Seconds from `start_expr` to `end_expr` (timestamps), each truncated to the second as
    Spark's unix_timestamp does. dbt.datediff counts unit boundaries crossed on DuckDB but
    elapsed units on Spark; this is the same on both. -#}
{% macro seconds_between(start_expr, end_expr) -%}
    {{ return(adapter.dispatch('seconds_between', 'paysight')(start_expr, end_expr)) }}
{%- endmacro %}
{% macro default__seconds_between(start_expr, end_expr) -%}
    (cast(floor(epoch({{ end_expr }})) as bigint) - cast(floor(epoch({{ start_expr }})) as bigint))
{%- endmacro %}
{% macro spark__seconds_between(start_expr, end_expr) -%}
    (unix_timestamp({{ end_expr }}) - unix_timestamp({{ start_expr }}))
{%- endmacro %}
