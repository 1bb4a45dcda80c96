"""The competition's tooling: PGDL task folders, the submission zip, a local ingestion and the
competition's scores."""
