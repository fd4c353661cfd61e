"""Properties: a hotel or space, known to Mews by a uuid and to Nexudus by an integer."""
