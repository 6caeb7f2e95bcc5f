"""Flask blueprints: ``recommend`` (JSON v1), ``explain_pages`` (HTML), ``admin`` (health, models, OpenAPI)."""
