{#- The raw layer is a contract declared in the `raw` source YAML (column names + data_type).
    Run on start so a warehouse that has not received some source yet still builds staging:
    a missing table is created empty with the declared columns; existing tables are untouched. -#}
{% macro create_raw_tables() -%}
    {{ return(adapter.dispatch('create_raw_tables', 'paysight')()) }}
{%- endmacro %}

{#- A raw source's declared columns as a DDL column list; `types` renames types the engine
    spells differently. -#}
{% macro raw_columns(node, types={}) -%}
    {%- set cols = [] -%}
    {%- for col in node.columns.values() -%}
        {%- set type = col.data_type or 'varchar' -%}
        {%- do cols.append(adapter.quote(col.name) ~ ' ' ~ types.get(type, type)) -%}
    {%- endfor -%}
    {{ return(cols | join(', ')) }}
{%- endmacro %}

{% macro default__create_raw_tables() -%}
    {%- if execute -%}
        {%- set statements = [] -%}
        {%- for node in graph.sources.values() if node.source_name == 'raw' -%}
            {%- if statements | length == 0 -%}
                {%- do statements.append('create schema if not exists ' ~ node.schema) -%}
            {%- endif -%}
            {%- do statements.append(
                'create table if not exists ' ~ node.schema ~ '.' ~ node.identifier
                ~ ' (' ~ raw_columns(node) ~ ')') -%}
        {%- endfor -%}
        {{ return(statements | join(';\n')) }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- On Spark the raw tables are the Parquet files the ingestion assets publish: one folder per
    table under PAYSIGHT_SPARK_DIR/raw (ingestion/raw_parquet.py). Each is declared as an
    external table with the contract's columns, so a table that has not received data yet
    reads as empty, and a re-declaration on every run picks up a contract change. -#}
{% macro spark__create_raw_tables() -%}
    {%- if execute -%}
        {%- set root = env_var('PAYSIGHT_SPARK_DIR', '../data/spark') ~ '/raw' -%}
        {%- set statements = [] -%}
        {%- for node in graph.sources.values() if node.source_name == 'raw' -%}
            {%- if statements | length == 0 -%}
                {%- do statements.append('create schema if not exists ' ~ node.schema) -%}
            {%- endif -%}
            {%- set name = node.schema ~ '.' ~ node.identifier -%}
            {%- do statements.append('drop table if exists ' ~ name) -%}
            {%- do statements.append(
                'create table ' ~ name ~ ' (' ~ raw_columns(node, {'varchar': 'string'})
                ~ ') using parquet location '
                ~ "'" ~ root ~ '/' ~ node.identifier ~ "'") -%}
        {%- endfor -%}
        {#- Spark runs one statement per call. -#}
        {%- for statement in statements -%}
            {%- do run_query(statement) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}
