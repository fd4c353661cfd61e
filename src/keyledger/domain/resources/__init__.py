"""The resource tree of a property: buildings, floors, rooms and beds."""
