"""The history store: SQLAlchemy models, schema management and queries."""
