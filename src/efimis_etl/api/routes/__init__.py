"""The API's routers, one module per concern; `api.app` includes them in the order OpenAPI lists them."""
