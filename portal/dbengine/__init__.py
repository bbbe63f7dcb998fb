"""The portal's database engines: Django's, with small changes (see each)."""
