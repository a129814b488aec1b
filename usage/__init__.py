"""Usage metering: one record per reply (tokens, cost, timing, outcome) and the price
of each model (editable in the admin, defaults from the genai-prices package)."""
