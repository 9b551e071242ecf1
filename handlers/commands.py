"""Every command family; importing this module registers them all."""
from handlers import customers, guided, paging  # noqa: F401
