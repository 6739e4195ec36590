"""HTTP layer: routers, request/response schemas, dependencies and error mapping."""
