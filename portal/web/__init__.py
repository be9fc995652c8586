"""HTTP: Litestar controllers that translate requests to domain calls and back."""
