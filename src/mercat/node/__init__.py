"""The marketplace node's HTTP API (seed 002's application layer): `create_app`, served by
`mercat serve`."""
