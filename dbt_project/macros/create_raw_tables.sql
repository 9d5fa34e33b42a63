{#- The raw layer is a contract declared in the `raw` source YAML (column names + data_type).
    Run on start so a warehouse that has not received some source yet still builds staging:
    a missing table is created empty with the declared columns; existing tables are untouched. -#}
{% macro create_raw_tables() -%}
    {{ return(adapter.dispatch('create_raw_tables', 'paysight')()) }}
{%- endmacro %}

{% macro default__create_raw_tables() -%}
    {%- if execute -%}
        {%- set statements = [] -%}
        {%- for node in graph.sources.values() if node.source_name == 'raw' -%}
            {%- if statements | length == 0 -%}
                {%- do statements.append('create schema if not exists ' ~ node.schema) -%}
            {%- endif -%}
            {%- set cols = [] -%}
            {%- for col in node.columns.values() -%}
                {%- do cols.append(adapter.quote(col.name) ~ ' ' ~ (col.data_type or 'varchar')) -%}
            {%- endfor -%}
            {%- do statements.append(
                'create table if not exists ' ~ node.schema ~ '.' ~ node.identifier
                ~ ' (' ~ cols | join(', ') ~ ')') -%}
        {%- endfor -%}
        {{ return(statements | join(';\n')) }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}
