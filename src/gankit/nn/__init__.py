"""Networks. They know nothing about losses: objectives ask for roles, families build them."""
