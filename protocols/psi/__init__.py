"""Two-party private set intersection (KKRT16), see protocols/psi/README section below."""
