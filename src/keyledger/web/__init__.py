"""The HTTP edge: the application, its middleware and one adapter per dialect (``mews``,
``nexudus``, ``api``), each translating its wire format to and from the domain services."""
