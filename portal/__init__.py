"""The Prime Ops Portal Django project."""
