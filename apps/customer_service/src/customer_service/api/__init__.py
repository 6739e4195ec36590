"""HTTP layer: routers, dependencies, schemas and the mapping of app errors to responses."""
