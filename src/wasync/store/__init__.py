"""The SQL mirror: schema, migrations, idempotent writes, queries and the jobs queue."""
