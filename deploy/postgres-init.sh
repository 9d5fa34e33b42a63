#!/bin/sh
# First start of the compose PostgreSQL: one database per store (Dagster's is POSTGRES_DB).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
create database paysight;
create database mlflow;
SQL
