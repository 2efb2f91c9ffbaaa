"""The HTTP API: a thin adapter over `Service` (app, routers by concern, request and response models)."""
