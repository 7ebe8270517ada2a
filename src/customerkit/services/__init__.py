"""Use-cases of a book: each service checks the policy and runs one unit of work per call."""
