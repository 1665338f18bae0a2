"""Examples a user copies: a model of their own, through the whole toolkit (README: "Bring your own model")."""
