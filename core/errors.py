"""The pricing core's error hierarchy: every refusal names the file, rule, field or line at fault."""


class PricingError(ValueError):
    """Base of everything the pricing core refuses; safe to show to a technician."""


class RuleError(PricingError):
    """A rules file (or the same tree from the server) is invalid; nothing of it was loaded."""


class CartError(PricingError):
    """A cart, card, time or redemption request handed to `quote` is invalid."""


class RefundError(PricingError):
    """A return does not fit the receipt it names (unknown line, too much quantity, ...)."""
