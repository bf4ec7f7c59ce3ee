"""Example plug-ins for mercat (see the package's pyproject.toml for their entry points)."""
