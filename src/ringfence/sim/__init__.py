"""The simulator: synthetic fleets and full-fleet scenarios driven through the real engine."""

__all__: list[str] = []
